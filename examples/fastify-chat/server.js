// A chat room on Fastify, through a hub, resumable after a reconnect.
//   pnpm build && node examples/fastify-chat/server.js      (PORT, default 3001)
// GET  /          the page (a normal HTML response: an SSE response here would leave the browser waiting)
// GET  /events    the stream of messages (EventSource)
// POST /messages  { user, text } → publishes to the `chat` topic; 201 { id }

import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import { createHub } from '@ssekit/core';
import ssekit from '@ssekit/fastify';
import Fastify from 'fastify';

// Every message gets an id from the hub and stays in its history, so a page that reconnects with
// Last-Event-ID gets exactly the messages it missed (or an `ssekit-gap` event if they are gone).
const hub = createHub({ history: { size: 1000, ttl: 10 * 60_000 } });

const app = Fastify({ logger: { level: process.env.LOG_LEVEL ?? 'warn' } });
// Plugin options are the defaults of every stream; on app.close() clients are told to come back in 1 s.
await app.register(ssekit, { keepalive: 15_000, closeRetry: 1000 });
await app.register(fastifyStatic, { root: fileURLToPath(new URL('./public', import.meta.url)) });

app.get('/events', (_request, reply) => {
  reply.sse({ hub, topics: ['chat'] });
});

app.post(
  '/messages',
  {
    schema: {
      body: {
        type: 'object',
        required: ['user', 'text'],
        additionalProperties: false,
        properties: {
          user: { type: 'string', minLength: 1, maxLength: 40 },
          text: { type: 'string', minLength: 1, maxLength: 500 },
        },
      },
    },
  },
  async (request, reply) => {
    const { user, text } = request.body;
    const id = await hub.publish('chat', { user, text, time: new Date().toISOString() });
    return reply.code(201).send({ id });
  },
);

const address = await app.listen({ port: Number(process.env.PORT ?? 3001) });
console.log(`listening on http://localhost:${new URL(address).port}`);

let stopping = false;
async function shutdown() {
  if (stopping) return;
  stopping = true;
  // The plugin ends every stream (with `retry: 1000`) before Fastify closes the server.
  await app.close();
  await hub.close();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
