export * from './backplane.js';
export * from './errors.js';
export { flushQueued } from './flush.js';
export * from './frame.js';
export * from './group.js';
export * from './history.js';
export * from './hub.js';
export * from './keepalive.js';
export * from './stream.js';
