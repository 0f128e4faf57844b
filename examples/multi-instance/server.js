// One app instance of the multi-instance example: Express, and a hub on the Redis backplane, so that
// every instance delivers every message and a client can resume on any of them.
//   INSTANCE=a PORT=3001 REDIS_URL=redis://127.0.0.1:6379 node examples/multi-instance/server.js
// start.mjs runs two of these behind nginx.
//
// GET  /           the page (it shows which instance serves its stream)
// GET  /events     the stream (topic `chat`), resumable with Last-Event-ID on any instance
// POST /messages   {"text": "..."} → published on this instance, delivered by all
// GET  /instance   {"instance": "..."}

import { fileURLToPath } from 'node:url';
import { createHub, isSseError } from '@ssekit/core';
import { sse } from '@ssekit/express';
import { redisBackplane } from '@ssekit/redis';
import express from 'express';

const INSTANCE = process.env.INSTANCE ?? `pid-${process.pid}`;
const TICK_MS = Number(process.env.TICK_MS ?? 5000);

// All instances share the stream key: that is what makes them one hub. Ids are Redis stream ids.
const backplane = redisBackplane({
  url: process.env.REDIS_URL,
  stream: process.env.STREAM ?? 'ssekit-example-multi-instance',
  maxLen: 1000,
});
const hub = createHub({ backplane });

const app = express();
app.use(express.static(fileURLToPath(new URL('./public', import.meta.url))));
app.use(express.json({ limit: '4kb' }));

app.get(
  '/events',
  sse({
    hub,
    topics: ['chat'],
    // How soon a client comes back when its instance goes away.
    retry: Number(process.env.RETRY ?? 1000),
    // Streams end after 80-100 % of this, so clients spread over new instances after a deploy.
    maxAge: Number(process.env.MAX_AGE ?? 10 * 60_000),
  }),
  (_req, res) => {
    // Sent to this client only, without an id (its Last-Event-ID stays that of the last message).
    res.sse.send({ instance: INSTANCE }, { event: 'instance' });
  },
);

app.post('/messages', async (req, res) => {
  const text = typeof req.body?.text === 'string' ? req.body.text.slice(0, 500) : '';
  if (text === '') {
    res.status(400).json({ error: 'text is required' });
    return;
  }
  try {
    const id = await hub.publish('chat', { text, from: INSTANCE, at: new Date().toISOString() });
    res.status(201).json({ id, instance: INSTANCE });
  } catch (error) {
    // Redis did not take it: say so rather than pretend it was sent.
    if (!isSseError(error, 'ERR_SSE_BACKPLANE')) throw error;
    res.status(503).json({ error: error.message });
  }
});

app.get('/instance', (_req, res) => {
  res.json({ instance: INSTANCE });
});

// Each instance ticks now and then, so two open pages show messages from both instances.
let ticks = 0;
const ticker =
  TICK_MS > 0
    ? setInterval(() => {
        hub.publish('chat', { text: `tick ${++ticks}`, from: INSTANCE, at: new Date().toISOString() }).catch(() => {});
      }, TICK_MS)
    : undefined;

await backplane.ready;
const server = app.listen(Number(process.env.PORT ?? 3001), '127.0.0.1', () => {
  console.log(`listening on http://localhost:${server.address().port} (instance ${INSTANCE})`);
});

let stopping = false;
async function shutdown() {
  if (stopping) return;
  stopping = true;
  clearInterval(ticker);
  // Every stream ends with a retry hint: its client reconnects (through the load balancer, to an
  // instance that is up) and resumes from its Last-Event-ID.
  await hub.close({ retry: 500 });
  await backplane.close();
  server.close(() => process.exit(0));
  server.closeIdleConnections();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
