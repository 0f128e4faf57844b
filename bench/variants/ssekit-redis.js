/**
 * ssekit core on node:http with the Redis backplane: like ssekit-core.js, but the hub's
 * ids, history and delivery go through a Redis stream (BENCH_REDIS_URL, BENCH_REDIS_STREAM), so an
 * event published in one such process reaches the clients of another.
 */
import http from 'node:http';
import { createRequire } from 'node:module';
import { createHub } from '@ssekit/core';
import { redisBackplane } from '@ssekit/redis';
import { hubVariant, streamHandler } from '../lib/hub-variant.js';
import { listen, shut } from '../lib/listen.js';

export async function start({ keepalive }) {
  const url = process.env.BENCH_REDIS_URL;
  const stream = process.env.BENCH_REDIS_STREAM;
  const backplane = redisBackplane({ url, stream, maxLen: 100_000 });
  await backplane.ready;
  const hub = createHub({ backplane });
  const variant = hubVariant(hub, 'ssekit-redis');
  const server = http.createServer(streamHandler(hub, keepalive, variant.report));
  const port = await listen(server);
  return {
    port,
    publish: variant.publish,
    count: variant.count,
    close: async () => {
      await hub.close();
      await backplane.close();
      await shut(server);
      if (process.env.BENCH_REDIS_CLEANUP === '1') await deleteStream(url, stream);
    },
  };
}

/** Removes the benchmark's stream key (ioredis is @ssekit/redis's dependency, resolved from there). */
async function deleteStream(url, stream) {
  const require = createRequire(import.meta.resolve('@ssekit/redis'));
  const { Redis } = require('ioredis');
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await client.connect();
    await client.del(stream);
  } catch {
    // Leaving a bounded stream behind is harmless.
  } finally {
    client.disconnect();
  }
}
