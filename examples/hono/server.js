// Live ticks on Hono (served on Node by @hono/node-server), through a hub, resumable after a reconnect.
//   pnpm build && node examples/hono/server.js      (PORT, default 3004)
// GET /          the page (a normal HTML response: an SSE response here would leave the browser waiting)
// GET /events    the stream of ticks (EventSource); resumes after Last-Event-ID by itself
//
// @ssekit/web works on the fetch API (Request in, Response out), so the same route runs unchanged
// on Bun, Deno or Cloudflare Workers: only `serve()` below is Node-specific.

import { readFile } from 'node:fs/promises';
import { serve } from '@hono/node-server';
import { createHub } from '@ssekit/core';
import { sse } from '@ssekit/web';
import { Hono } from 'hono';

const TICK_MS = Number(process.env.TICK_MS ?? 500);

// Every tick gets an id from the hub and stays in its history, so a page that reconnects with
// Last-Event-ID gets exactly the ticks it missed (or an `ssekit-gap` event if they are gone).
const hub = createHub({ history: { size: 1000, ttl: 5 * 60_000 } });

const page = await readFile(new URL('./public/index.html', import.meta.url), 'utf8');

const app = new Hono();
app.get('/', (c) => c.html(page));
// sse() answers with a Response: the stream, or a plain refusal (406 to a client that does not
// accept text/event-stream, 503 + Retry-After over maxConnections). Hono passes it through as is.
app.get('/events', (c) => sse(c.req.raw, { hub, topics: ['ticks'] }));

let n = 0;
const publisher = setInterval(() => {
  n++;
  hub.publish('ticks', { n, time: new Date().toISOString() }).catch((err) => console.error('publish failed:', err));
}, TICK_MS);

const port = Number(process.env.PORT ?? 3004);
const server = serve({ fetch: app.fetch, port }, (info) => {
  console.log(`listening on http://localhost:${info.port}`);
});
server.on('error', (err) => {
  if (err.code === 'EADDRINUSE') console.error(`port ${port} is already in use: stop the other server or set PORT`);
  else console.error(err);
  process.exit(1);
});

let stopping = false;
async function shutdown() {
  if (stopping) return;
  stopping = true;
  clearInterval(publisher);
  // Ends every stream with `retry: 1000`: pages come back in a second (to this server once it is up
  // again, or to another instance) and resume from their Last-Event-ID.
  await hub.close({ retry: 1000 });
  server.close(() => process.exit(0));
  // Idle keep-alive connections of the page would otherwise hold close() up.
  server.closeIdleConnections?.();
  // A page that reconnects on a kept-alive connection before the process is gone would hold close()
  // up for as long as it keeps coming back: after a grace period, every connection goes.
  setTimeout(() => server.closeAllConnections?.(), 1000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
