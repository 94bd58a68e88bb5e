export * from './tiny-base';
export * from './synthetic-setup';
export * from './cpt-vs-sft';
