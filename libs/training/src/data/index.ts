export * from './sample-source';
export * from './batching';
