export * from './wsa';
export * from './data-plan';
