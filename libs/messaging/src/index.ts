export * from './kafka';
export * from './failures';
export * from './dead-letters';
export * from './consumer-liveness';
export * from './message-processor';
export * from './resilient-consumer';
export * from './acls';
export * from './group-lease';
