/**
 * 1. The naive node:http server most tutorials show: a Set of responses, one `res.write()` per client
 * per event (the frame built in the loop), one `setInterval` heartbeat per connection, and `write()`'s
 * result ignored.
 */
import http from 'node:http';
import { isEvents, listen, shut } from '../lib/listen.js';

export async function start({ keepalive }) {
  const clients = new Set();
  let seq = 0;
  const server = http.createServer((req, res) => {
    if (!isEvents(req)) {
      res.statusCode = 404;
      res.end();
      return;
    }
    res.writeHead(200, {
      'Content-Type': 'text/event-stream',
      'Cache-Control': 'no-cache',
      Connection: 'keep-alive',
    });
    res.flushHeaders();
    clients.add(res);
    const timer = setInterval(() => res.write(':\n\n'), keepalive);
    res.on('close', () => {
      clearInterval(timer);
      clients.delete(res);
    });
  });
  const port = await listen(server);
  return {
    port,
    publish(data) {
      const id = ++seq;
      for (const res of clients) res.write(`id: ${id}\ndata: ${data}\n\n`);
    },
    count: () => clients.size,
    close: () => shut(server),
  };
}
