export * from './cases';
export * from './decoding';
export * from './evaluate';
export * from './domain-split';
