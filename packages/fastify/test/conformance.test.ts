/** The adapter conformance suite on Fastify: `app.get('/events', (request, reply) => reply.sse(options))`. */
import ssekit from '@ssekit/fastify';
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import { adapterSuite } from '../../core/test/support/adapter-suite.js';

const apps: FastifyInstance[] = [];

adapterSuite({
  name: 'fastify',
  async serve(options) {
    const app = Fastify({ forceCloseConnections: true });
    apps.push(app);
    await app.register(ssekit);
    app.get('/events', (_request, reply) => reply.sse(options as Parameters<typeof reply.sse>[0]));
    await app.listen({ port: 0, host: '127.0.0.1' });
    const address = app.server.address() as { port: number };
    return `http://127.0.0.1:${address.port}`;
  },
  async create(options) {
    const app = Fastify();
    apps.push(app);
    await app.register(ssekit, options);
    await app.ready();
  },
  param: (req, name) => {
    const value = ((req as FastifyRequest).query as Record<string, unknown>)[name];
    return typeof value === 'string' ? value : undefined;
  },
  async close() {
    await Promise.all(apps.splice(0).map((app) => app.close()));
  },
});
