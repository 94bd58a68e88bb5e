export * from './model';
export * from './runner';
export * from './source';
export * from './progress-file';
export * from './kafka-sink';
export * from './live';
