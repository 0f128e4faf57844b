/** 7. ssekit on Fastify 5: the plugin, `reply.sse({ hub, topics })` in the route; `hub.publish()`. */
import { createHub } from '@ssekit/core';
import Fastify from 'fastify';
import { hubVariant } from '../lib/hub-variant.js';
import { BACKLOG } from '../lib/listen.js';

export async function start({ keepalive }) {
  const mod = await import('@ssekit/fastify');
  const plugin = mod.default ?? mod.ssekit ?? mod.ssekitFastify;
  if (typeof plugin !== 'function') throw new Error('@ssekit/fastify has no plugin export yet (build it first)');
  const hub = createHub();
  const variant = hubVariant(hub, 'ssekit-fastify');
  const report = variant.report;
  const app = Fastify({ logger: false });
  await app.register(plugin, { keepalive });
  app.get('/events', (_request, reply) => {
    const opened = reply.sse({ hub, topics: ['t'] });
    if (opened && typeof opened.then === 'function') opened.catch(report);
  });
  await app.listen({ port: 0, host: '127.0.0.1', backlog: BACKLOG });
  app.server.maxConnections = 1_000_000;
  return {
    port: app.server.address().port,
    publish: variant.publish,
    count: variant.count,
    close: async () => {
      await hub.close();
      app.server.closeAllConnections();
      await app.close();
    },
  };
}
