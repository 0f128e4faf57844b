/**
 * Hand-written SSE on Express 5, as its tutorials show: headers, a Set of responses, one `res.write()`
 * per client per event, one heartbeat timer per connection. What ssekit Express is compared with.
 */
import http from 'node:http';
import express from 'express';
import { listen, shut } from '../lib/listen.js';

export async function start({ keepalive }) {
  const clients = new Set();
  let seq = 0;
  const app = express();
  app.get('/events', (req, res) => {
    res.set({ 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache', Connection: 'keep-alive' });
    res.flushHeaders();
    clients.add(res);
    const timer = setInterval(() => res.write(':\n\n'), keepalive);
    req.on('close', () => {
      clearInterval(timer);
      clients.delete(res);
    });
  });
  const server = http.createServer(app);
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
