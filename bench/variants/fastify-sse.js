/**
 * 4. @fastify/sse: a `{ sse: true }` route kept open with `keepAlive()`; publishing sends to every
 * open context (the plugin has no broadcast, so this is how its README's live example scales out).
 */

import fastifySse from '@fastify/sse';
import Fastify from 'fastify';
import { BACKLOG } from '../lib/listen.js';

export async function start({ keepalive }) {
  const clients = new Set();
  let seq = 0;
  const app = Fastify({ logger: false });
  await app.register(fastifySse, { heartbeatInterval: keepalive });
  app.get('/events', { sse: true }, async (_request, reply) => {
    const context = reply.sse;
    context.keepAlive();
    context.sendHeaders();
    // writeHead() alone holds the head until the first write; a client must see the stream open now.
    reply.raw.flushHeaders();
    clients.add(context);
    context.onClose(() => clients.delete(context));
  });
  await app.listen({ port: 0, host: '127.0.0.1', backlog: BACKLOG });
  app.server.maxConnections = 1_000_000;
  const swallow = () => {};
  return {
    port: app.server.address().port,
    publish(data) {
      const message = { id: String(++seq), data };
      for (const context of clients) context.send(message).catch(swallow);
    },
    count: () => clients.size,
    close: async () => {
      app.server.closeAllConnections();
      await app.close();
    },
  };
}
