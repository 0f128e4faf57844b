// The overload server (stress/overload.test.ts): an Express or a Fastify app on the BUILT packages
// whose event route is limited to `maxConnections` open streams, and a health route on the same
// server that must keep answering quickly while connections past the limit are refused.
//
// argv: express|fastify, maxConnections, retryAfter (s).
import { allStreams } from '../../packages/core/dist/index.js';
import { sse } from '../../packages/express/dist/index.js';
import ssekit from '../../packages/fastify/dist/index.js';
import { announce, express, Fastify, serveCommands } from './frameworks.mjs';

const [framework = 'express', max = '100', retryAfter = '7'] = process.argv.slice(2);
const maxConnections = Number(max);
const KEEPALIVE = 1000;

let close;
let port;
if (framework === 'express') {
  const app = express();
  const events = sse({ maxConnections, retryAfter: Number(retryAfter), keepalive: KEEPALIVE });
  app.get('/events', events, (_req, res) => {
    res.sse.send('hello', { event: 'hello' });
  });
  // The refusals go to Express's own error handling (finalhandler), as the adapter documents.
  app.get('/health', (_req, res) => {
    res.json({ ok: true, open: events.group.size, refused: events.group.refused });
  });
  const server = app.listen(0, '127.0.0.1');
  await new Promise((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  port = server.address().port;
  close = async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  };
} else {
  const app = Fastify({ logger: false });
  await app.register(ssekit, { maxConnections, retryAfter: Number(retryAfter), keepalive: KEEPALIVE });
  let refused = 0;
  app.addHook('onResponse', async (request, reply) => {
    if (request.url === '/events' && reply.statusCode === 503) refused++;
  });
  app.get('/events', (_request, reply) => {
    reply.sse().send('hello', { event: 'hello' });
  });
  app.get('/health', async () => ({ ok: true, open: allStreams.size, refused }));
  await app.listen({ port: 0, host: '127.0.0.1' });
  port = app.server.address().port;
  close = () => app.close();
}

serveCommands({
  /** CPU time this process has used, in µs (user + system). */
  cpu: () => {
    const { user, system } = process.cpuUsage();
    return user + system;
  },
  close: async () => {
    await close();
    setImmediate(() => process.exit(0));
  },
});

announce({ port, maxConnections });
