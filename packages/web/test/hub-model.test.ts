/** The hub model (hub.model.ts) served through the web route: `sse(request, { hub, topics }, handler)`. */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import { sse } from '@ssekit/web';
import { expect, test } from 'vitest';
import { modelRuns, runHubModel } from '../../core/test/hub.model.js';

const runs = modelRuns(10);

test('the hub model holds through sse(request, { hub, topics })', { timeout: 60_000 + runs * 2_000 }, async () => {
  const summary = await runHubModel({
    historySize: 6,
    runs,
    async serve(hub, opened, report) {
      const server = serve({
        port: 0,
        hostname: '127.0.0.1',
        fetch: (request) => {
          const query = new URL(request.url).searchParams;
          return sse(
            request,
            { hub, keepalive: false, topics: (query.get('topics') ?? '').split(','), onError: report },
            (stream) => opened(query.get('conn') ?? '', stream),
          );
        },
      }) as Server;
      await new Promise<void>((resolve) => server.once('listening', () => resolve()));
      return {
        url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/events`,
        close() {
          server.closeAllConnections();
          return new Promise<void>((resolve) => server.close(() => resolve()));
        },
      };
    },
  });
  expect(summary.replays).toBeGreaterThan(0);
  expect(summary.gaps).toBeGreaterThan(0);
});
