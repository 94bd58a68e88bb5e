export * from './recommender-runtime';
