export * from './errors.js';
export * from './frame.js';
export * from './group.js';
export * from './keepalive.js';
export * from './stream.js';
