// The plain node:http example: a clock and a job-progress feed on one hub, no framework.
//   node examples/node-http/server.js      (PORT, default 3002)
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import { closeAll, createEventStream, createHub, refuse } from '@ssekit/core';

const hub = createHub({ history: { size: 500 } });
const page = await readFile(new URL('./public/index.html', import.meta.url));

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url ?? '/', 'http://localhost');
  if (url.pathname === '/') {
    // The page itself is a normal response: an SSE response here would leave the browser waiting.
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(page);
    return;
  }
  if (url.pathname === '/events') {
    if (url.searchParams.get('done') === '1') {
      // 204 is the one answer that makes EventSource stop reconnecting.
      refuse(res);
      return;
    }
    let stream;
    try {
      stream = createEventStream(req, res, { retry: 1000 });
    } catch (err) {
      // 503 + Retry-After (maxConnections) or a bad option: answer it; nothing was written yet.
      res.writeHead(err.status ?? 500, err.headers ?? {}).end(err.message);
      return;
    }
    await hub.subscribe(stream, ['clock']);
    return;
  }
  res.writeHead(404).end('not found');
});

let tick = 0;
const clock = setInterval(() => {
  tick++;
  hub.publish('clock', { tick, time: new Date().toISOString() }).catch((err) => console.error(err));
}, 1000);

server.listen(Number(process.env.PORT ?? 3002), () => {
  console.log(`listening on http://localhost:${server.address().port}`);
});

function shutdown() {
  clearInterval(clock);
  // Tell clients to come back in 1 s (to this server once it is up again, or another instance).
  closeAll({ retry: 1000 });
  server.close(() => process.exit(0));
  // A page that reconnects on a kept-alive connection before the process is gone would hold close()
  // up for as long as it keeps coming back: after a grace period, every connection goes.
  setTimeout(() => server.closeAllConnections(), 1000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
