export * from './store';
export * from './digest';
export * from './local-store';
