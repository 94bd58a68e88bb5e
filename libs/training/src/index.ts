export * from './schedule';
export * from './data';
export * from './cpt';
export * from './sft';
export * from './eval';
export * from './runtime';
export * from './experiment';
