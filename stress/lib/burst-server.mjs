// The burst server (stress/burst.test.ts): one variant per process, on the BUILT packages, with
// default options. `node burst-server.mjs <variant>` where variant is core | express | fastify | naive.
// GET /events streams the hub's topic `t` (naive: a hand-written `res.write()` loop over the same
// events). Commands: `burst {count, size}` publishes count events of size bytes in one go; `figures`
// answers open streams, closed-by-server counts and memory after a forced GC.
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { createEventStream, createHub } from '../../packages/core/dist/index.js';
import { sse } from '../../packages/express/dist/index.js';
import ssekit from '../../packages/fastify/dist/index.js';
import { announce, express, Fastify, serveCommands } from './frameworks.mjs';

const variant = process.argv[2] ?? 'core';
const sendTimeout = process.argv[3] === undefined ? undefined : Number(process.argv[3]);
if (typeof globalThis.gc !== 'function') throw new Error('run with --expose-gc');

const hub = createHub();
// Only what the test asks for differs from the defaults: a shorter stall time in the reduced run.
const streamOptions = sendTimeout === undefined ? {} : { sendTimeout };
const naive = new Set();
let closedByServer = 0;

let server;
if (variant === 'core') {
  server = http.createServer((req, res) => {
    const stream = createEventStream(req, res, streamOptions);
    hub.subscribe(stream, 't').catch((error) => console.error(error));
  });
} else if (variant === 'express') {
  const app = express();
  app.get('/events', sse({ hub, topics: ['t'], ...streamOptions }));
  server = http.createServer(app);
} else if (variant === 'fastify') {
  const app = Fastify();
  await app.register(ssekit, streamOptions);
  app.get('/events', (_request, reply) => reply.sse({ hub, topics: ['t'] }));
  await app.ready();
  server = app.server;
} else if (variant === 'naive') {
  // What a hand-written route does: write every event to every response, ignoring write()'s result.
  server = http.createServer((_req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
    naive.add(res);
    res.on('close', () => naive.delete(res));
  });
} else {
  throw new Error(`unknown variant ${variant}`);
}
// Count connections the server ended (a FIN or RST from us), not the ones clients closed.
server.on('connection', (socket) => {
  socket.on('close', () => {
    if (!socket.ssekitClientEnded) closedByServer++;
  });
  socket.on('end', () => {
    socket.ssekitClientEnded = true;
  });
  socket.on('error', () => {});
});
server.listen(0, '127.0.0.1', () => announce({ port: server.address().port }));

serveCommands({
  burst({ count, size }) {
    // Distinct payloads, as real events are: memory then holds each one (a repeated string would be
    // shared and hide what is kept).
    const payloads = Array.from({ length: count }, () => randomBytes(size / 2).toString('hex'));
    for (let i = 0; i < count; i++) {
      const payload = payloads[i];
      if (variant === 'naive') {
        const frame = `id: ${i}\ndata: ${payload}\n\n`;
        for (const res of naive) res.write(frame);
      } else {
        hub.publish('t', payload).catch((error) => console.error(error));
      }
    }
    return true;
  },
  figures() {
    for (let i = 0; i < 3; i++) globalThis.gc();
    const memory = process.memoryUsage();
    const stats = hub.stats();
    return {
      streams: variant === 'naive' ? naive.size : stats.streams,
      closedByServer,
      rss: memory.rss,
      arrayBuffers: memory.arrayBuffers,
      heapUsed: memory.heapUsed,
      behind: stats.behind,
      bufferedBytes: stats.bufferedBytes,
      cut: stats.cut,
      slowClosed: stats.slowClosed,
    };
  },
});
