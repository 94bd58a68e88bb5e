export * from './ranking';
export * from './matching';
export * from './iterative';
export * from './report';
