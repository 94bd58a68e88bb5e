export * from './types';
export * from './checkpoint';
export * from './cpt-round';
