/**
 * The adapter conformance suite on fetch handlers: `(request) => sse(request, options)`, served on
 * Node by `@hono/node-server` (the runtime tests run the same handler on Bun, Deno and workerd).
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import { sse, type WebSseOptions } from '@ssekit/web';
import { adapterSuite } from '../../core/test/support/adapter-suite.js';

const servers: Server[] = [];

adapterSuite({
  name: 'web (@hono/node-server)',
  async serve(options) {
    const server = serve({
      fetch: (request) => sse(request, options as WebSseOptions),
      port: 0,
      hostname: '127.0.0.1',
    });
    servers.push(server as Server);
    await new Promise<void>((resolve) => server.once('listening', () => resolve()));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  },
  async create(options) {
    await sse(new Request('http://localhost/events'), options as WebSseOptions);
  },
  param: (req, name) => new URL((req as Request).url).searchParams.get(name) ?? undefined,
  async close() {
    for (const server of servers.splice(0)) {
      server.closeAllConnections();
      server.close();
    }
  },
});
