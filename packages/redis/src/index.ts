export { type RedisBackplane, type RedisBackplaneOptions, redisBackplane } from './backplane.js';
export { compareStreamIds, isStreamId } from './stream-id.js';
