/** 6. ssekit on Express 5: `sse({ hub, topics })` middleware, no handler; `hub.publish()`. */
import http from 'node:http';
import { createHub } from '@ssekit/core';
import express from 'express';
import { hubVariant } from '../lib/hub-variant.js';
import { listen, shut } from '../lib/listen.js';

export async function start({ keepalive }) {
  const { sse } = await import('@ssekit/express');
  if (typeof sse !== 'function') throw new Error('@ssekit/express does not export sse() yet (build it first)');
  const hub = createHub();
  const variant = hubVariant(hub, 'ssekit-express');
  const app = express();
  app.get('/events', sse({ hub, topics: () => ['t'], keepalive }));
  const server = http.createServer(app);
  const port = await listen(server);
  return {
    port,
    publish: variant.publish,
    count: variant.count,
    close: async () => {
      await hub.close();
      await shut(server);
    },
  };
}
