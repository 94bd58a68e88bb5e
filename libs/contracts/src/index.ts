export * from './topics';
export * from './result';
export * from './limits';
export * from './events';
export * from './control';
export * from './parse';
export * from './splits';
