// The main example: live prices on Express, through a hub, resumable after a reconnect.
//   pnpm build && node examples/express-prices/server.js      (PORT, default 3000)
// GET /          the page (a normal HTML response: an SSE response here would leave the browser waiting)
// GET /prices    EventSource → the stream; fetch() with Accept: application/json → a JSON snapshot

import { fileURLToPath } from 'node:url';
import { createHub } from '@ssekit/core';
import { sse } from '@ssekit/express';
import express from 'express';

const TICK_MS = Number(process.env.TICK_MS ?? 500);

// Every tick gets an id from the hub and stays in its history, so a client that reconnects with
// Last-Event-ID gets exactly the ticks it missed (or an `ssekit-gap` event if they are gone).
const hub = createHub({ history: { size: 1000, ttl: 5 * 60_000 } });

const prices = { ACME: 100, GLOBEX: 250, INITECH: 42 };
let lastTick = null;

async function tick() {
  const symbols = Object.keys(prices);
  const symbol = symbols[Math.floor(Math.random() * symbols.length)];
  const change = Math.round((Math.random() - 0.5) * 200) / 100;
  prices[symbol] = Math.max(1, Math.round((prices[symbol] + change) * 100) / 100);
  const data = { symbol, price: prices[symbol], change, time: new Date().toISOString() };
  const id = await hub.publish('prices', data);
  lastTick = { id, ...data };
}
const publisher = setInterval(() => tick().catch((err) => console.error('publish failed:', err)), TICK_MS);

const app = express();
app.use(express.static(fileURLToPath(new URL('./public', import.meta.url))));

// Requests that accept text/event-stream get the stream (no handler needed: the hub feeds it);
// with negotiate: true, the others fall through to the JSON route below.
app.get('/prices', sse({ hub, topics: () => ['prices'], negotiate: true }));
app.get('/prices', (_req, res) => {
  res.json({ prices, last: lastTick });
});

const server = app.listen(Number(process.env.PORT ?? 3000), () => {
  console.log(`listening on http://localhost:${server.address().port}`);
});

let stopping = false;
async function shutdown() {
  if (stopping) return;
  stopping = true;
  clearInterval(publisher);
  // Ends every stream with `retry: 1000`: clients come back in a second (to this server once it is
  // up again, or to another instance) and resume from their Last-Event-ID.
  await hub.close({ retry: 1000 });
  server.close(() => process.exit(0));
  // Idle keep-alive connections of the page would otherwise hold close() up.
  server.closeIdleConnections();
  // A page that reconnects on a kept-alive connection before the process is gone would hold close()
  // up for as long as it keeps coming back: after a grace period, every connection goes.
  setTimeout(() => server.closeAllConnections?.(), 1000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
