export * from './config';
export * from './observability.module';
export * from './bootstrap';
export * from './failures';
export * from './consumer-metrics';
export * from './consumers';
export * from './mutation.guard';
export * from './base-model';
