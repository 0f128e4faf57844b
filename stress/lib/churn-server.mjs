// The churn server (stress/churn.test.ts): an Express app and a Fastify app on the BUILT packages,
// each with its own hub that is published to every 5 ms throughout, plus a streaming-source route on
// each. Run with --expose-gc: it measures its own heap after a forced GC when the test asks.
//
// Routes (both apps): GET /hub?t=a,b — a hub stream (resumes from Last-Event-ID); GET /pipe — an
// endless async generator piped into the stream (its `finally` is counted).
import { setTimeout as sleep } from 'node:timers/promises';
import { getHeapSpaceStatistics } from 'node:v8';
import { allStreams, createHub, defaultScheduler } from '../../packages/core/dist/index.js';
import { sse } from '../../packages/express/dist/index.js';
import ssekit from '../../packages/fastify/dist/index.js';
import { announce, connectionsOf, express, Fastify, serveCommands } from './frameworks.mjs';

const HISTORY = Number(process.argv[2] ?? 2000);
const TICK_MS = 5;
const PAD = 'x'.repeat(300);
const KEEPALIVE = 1000;

if (typeof globalThis.gc !== 'function') throw new Error('run with --expose-gc');

const warnings = [];
process.on('warning', (warning) => warnings.push(`${warning.name}: ${warning.message}`));

const tally = (counts, key) => {
  counts[key] = (counts[key] ?? 0) + 1;
};
/** Errors the adapters reported (a reset client is a close, not an error: expected to stay empty). */
const errors = {};
const onError = (error) => tally(errors, `${error?.code ?? error?.name ?? 'unknown'}: ${error?.message}`);
/**
 * How streams ended: `backlogged` when the socket had not drained (the client went away while the
 * server was mid-write), else `drained`.
 */
const closes = { express: {}, fastify: {} };
const track = (app, stream) => stream.onClose(() => tally(closes[app], stream.needsDrain ? 'backlogged' : 'drained'));
/** Errors seen on the servers' sockets: ECONNRESET is a client's RST arriving. */
const socketErrors = { express: {}, fastify: {} };
const watchSockets = (app, server) =>
  server.on('connection', (socket) => socket.on('error', (error) => tally(socketErrors[app], error.code ?? 'unknown')));

const generators = { started: 0, finished: 0 };
/** An endless producer, the shape of an LLM token stream: a few items, then a wait. */
async function* tokens() {
  generators.started++;
  try {
    for (let i = 0; ; i++) {
      yield { i, text: PAD };
      if (i % 8 === 7) await sleep(1);
    }
  } finally {
    generators.finished++;
  }
}

const topicsOf = (url) => {
  const wanted = new URL(url, 'http://x').searchParams.get('t')?.split(',') ?? [];
  const topics = wanted.filter((t) => t === 'a' || t === 'b');
  return topics.length > 0 ? topics : ['a'];
};

const hubs = {
  express: createHub({ history: { size: HISTORY }, onError }),
  fastify: createHub({ history: { size: HISTORY }, onError }),
};
/** Ids the hubs hold in history, oldest first (both hubs get the same publishes). */
const held = { express: [], fastify: [] };

let seq = 0;
let publishing = true;
const publishOnce = () => {
  const n = seq++;
  // Every message is on 'a' (so a replay of 'a' covers the whole history), every 4th also on 'b'.
  const topics = n % 4 === 0 ? ['a', 'b'] : 'a';
  for (const name of ['express', 'fastify']) {
    hubs[name].publish(topics, { n, text: PAD }).then((id) => {
      const ids = held[name];
      ids.push(id);
      if (ids.length > HISTORY) ids.shift();
    }, onError);
  }
};
// Fill the history first: it is part of the steady state the heap baseline is taken in.
for (let i = 0; i < HISTORY; i++) publishOnce();
const publisher = setInterval(() => {
  if (publishing) publishOnce();
}, TICK_MS);

// Express.
const app = express();
const expressHub = sse({ hub: hubs.express, topics: (req) => topicsOf(req.url), keepalive: KEEPALIVE, onError });
app.get('/hub', expressHub, (_req, res) => {
  track('express', res.sse);
});
const expressPipe = sse({ source: () => tokens(), keepalive: KEEPALIVE, onError });
app.get('/pipe', expressPipe, (_req, res) => {
  track('express', res.sse);
});
const expressServer = app.listen(0, '127.0.0.1');
await new Promise((resolve, reject) => {
  expressServer.once('listening', resolve);
  expressServer.once('error', reject);
});
watchSockets('express', expressServer);

// Fastify.
const fastify = Fastify({ logger: false });
await fastify.register(ssekit, { keepalive: KEEPALIVE, onError });
fastify.get('/hub', (_request, reply) => {
  track('fastify', reply.sse({ hub: hubs.fastify, topics: (req) => topicsOf(req.url) }));
});
fastify.get('/pipe', (_request, reply) => {
  track('fastify', reply.sse(tokens()));
});
await fastify.listen({ port: 0, host: '127.0.0.1' });
watchSockets('fastify', fastify.server);

const hubFigures = (hub) => {
  const { streams, topics, replays, gaps, frames, published } = hub.stats();
  return { streams, topics, replays, gaps, frames, published, group: hub.group.size };
};

serveCommands({
  /** Pauses (false) or resumes (true) publishing. */
  publishing: (on) => {
    publishing = on;
    return { seq };
  },
  /** The oldest id each hub still holds, and one `margin` newer (far back, but safe from eviction). */
  ids: (margin = 0) => ({
    express: { oldest: held.express[0], far: held.express[Math.min(margin, held.express.length - 1)] },
    fastify: { oldest: held.fastify[0], far: held.fastify[Math.min(margin, held.fastify.length - 1)] },
  }),
  /** Everything that must return to zero once every client has gone. */
  counts: async () => ({
    allStreams: allStreams.size,
    scheduler: defaultScheduler.size,
    groups: { expressHub: expressHub.group.size, expressPipe: expressPipe.group.size },
    hubs: { express: hubFigures(hubs.express), fastify: hubFigures(hubs.fastify) },
    sockets: { express: await connectionsOf(expressServer), fastify: await connectionsOf(fastify.server) },
    generators: { ...generators },
    closes,
    socketErrors,
    errors,
    warnings,
  }),
  /** Heap after forced full GCs (a few, with turns between, so finalizers and weak callbacks run). */
  heap: async () => {
    for (let i = 0; i < 6; i++) {
      globalThis.gc();
      await sleep(20);
    }
    const { heapUsed, heapTotal, rss, external } = process.memoryUsage();
    // Compiled code is reported apart: V8 keeps optimising hot functions for a while, which is not a leak.
    const code = getHeapSpaceStatistics().find((space) => space.space_name === 'code_space')?.space_used_size ?? 0;
    return { heapUsed, heapTotal, rss, external, code };
  },
  close: async () => {
    clearInterval(publisher);
    await Promise.all([hubs.express.close(), hubs.fastify.close()]);
    expressServer.closeAllConnections();
    await new Promise((resolve) => expressServer.close(resolve));
    await fastify.close();
    setImmediate(() => process.exit(0));
  },
});

announce({ express: expressServer.address().port, fastify: fastify.server.address().port, history: HISTORY });
