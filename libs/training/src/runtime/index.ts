export * from './batched-scoring';
export * from './recommender-runtime';
