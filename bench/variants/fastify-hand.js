/**
 * Hand-written SSE on Fastify 5: the reply hijacked, headers on the raw response, a Set of responses,
 * one `write()` per client per event, one heartbeat timer per connection. What ssekit Fastify is
 * compared with.
 */
import Fastify from 'fastify';
import { BACKLOG } from '../lib/listen.js';

export async function start({ keepalive }) {
  const clients = new Set();
  let seq = 0;
  const app = Fastify({ logger: false });
  app.get('/events', (request, reply) => {
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache', Connection: 'keep-alive' });
    res.flushHeaders();
    clients.add(res);
    const timer = setInterval(() => res.write(':\n\n'), keepalive);
    request.raw.on('close', () => {
      clearInterval(timer);
      clients.delete(res);
    });
  });
  await app.listen({ port: 0, host: '127.0.0.1', backlog: BACKLOG });
  app.server.maxConnections = 1_000_000;
  return {
    port: app.server.address().port,
    publish(data) {
      const id = ++seq;
      for (const res of clients) res.write(`id: ${id}\ndata: ${data}\n\n`);
    },
    count: () => clients.size,
    close: async () => {
      app.server.closeAllConnections();
      await app.close();
    },
  };
}
