/** The hub model (hub.model.ts) served through the Fastify route: `reply.sse({ hub, topics })`. */
import ssekit from '@ssekit/fastify';
import Fastify, { type FastifyRequest } from 'fastify';
import { expect, test } from 'vitest';
import { modelRuns, runHubModel } from '../../core/test/hub.model.js';

const runs = modelRuns(10);

test('the hub model holds through reply.sse({ hub, topics })', { timeout: 60_000 + runs * 2_000 }, async () => {
  const summary = await runHubModel({
    historySize: 6,
    runs,
    async serve(hub, opened, report) {
      const app = Fastify({ forceCloseConnections: true });
      await app.register(ssekit, { keepalive: false, onError: report });
      app.get('/events', async (request, reply) => {
        const query = request.query as Record<string, string>;
        // An async topics function: reply.sse() resolves once the stream is subscribed.
        const stream = await reply.sse({ hub, topics: async (req: FastifyRequest) => topicsOf(req) });
        if (stream !== undefined) opened(query.conn ?? '', stream);
        return stream;
      });
      await app.listen({ port: 0, host: '127.0.0.1' });
      const { port } = app.server.address() as { port: number };
      return { url: `http://127.0.0.1:${port}/events`, close: () => app.close() };
    },
  });
  expect(summary.replays).toBeGreaterThan(0);
  expect(summary.gaps).toBeGreaterThan(0);
});

function topicsOf(request: FastifyRequest): string[] {
  return String((request.query as Record<string, string>).topics ?? '').split(',');
}
