export * from './item-embeddings';
export * from './projector';
export * from './hybrid';
export * from './fine-tune';
