// The rolling-restart test's publisher: a hub on the same Redis stream as the app instances, in a
// process of its own so that its pace does not depend on how busy the test's clients keep the test
// process. It publishes `{ text: "<seq>" }` to topic `chat` at RATE per second, one publish at a time
// (so ids and seqs are in the same order), and reports each one to its parent:
//   → { seq, id, at }   at: ms since the epoch (performance.timeOrigin + now: comparable across processes)
//   → { error }         a publish failed (it stops publishing)
//   ← 'stop'            stop; it answers { stopped: count } and exits
// It imports the built packages (dist), as the app instances do.
//   REDIS_URL=… STREAM=… RATE=100 node stress/restart/publisher.mjs
import { createHub } from '../../packages/core/dist/index.js';
import { redisBackplane } from '../../packages/redis/dist/index.js';

const RATE = Number(process.env.RATE ?? 100);
const backplane = redisBackplane({ url: process.env.REDIS_URL, stream: process.env.STREAM, maxLen: 100_000 });
const hub = createHub({ backplane });
await backplane.ready;

const now = () => performance.timeOrigin + performance.now();
let stopped = false;
let seq = 0;
process.on('message', (message) => {
  if (message === 'stop') stopped = true;
});
process.on('disconnect', () => {
  stopped = true;
});

process.send({ ready: true });
const startedAt = now();
while (!stopped) {
  // An absolute schedule: a late turn catches up instead of lowering the rate.
  const due = Math.floor(((now() - startedAt) * RATE) / 1000);
  while (seq < due && !stopped) {
    try {
      const id = await hub.publish('chat', { text: String(seq + 1) });
      seq++;
      process.send({ seq, id, at: now() });
    } catch (error) {
      process.send({ error: String(error?.stack ?? error) });
      stopped = true;
    }
  }
  await new Promise((resolve) => setTimeout(resolve, 2));
}
await hub.close();
await backplane.close();
if (process.connected) process.send({ stopped: seq, startedAt, stoppedAt: now() }, () => process.exit(0));
else process.exit(0);
