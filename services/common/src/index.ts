export * from './config';
export * from './observability.module';
export * from './bootstrap';
