export * from './schedule';
export * from './data';
export * from './cpt';
export * from './runtime';
