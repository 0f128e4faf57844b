/**
 * `@ssekit/web` over a real server (`@hono/node-server`), and its import graph: bundled as a worker
 * would bundle it, it imports nothing from `node:` and runs where `Buffer`, `process` and
 * `setImmediate` do not exist.
 */
import type { Server } from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import vm from 'node:vm';
import { serve } from '@hono/node-server';
import { createHub, type Hub } from '@ssekit/core';
import { refuse, sse, type WebSseHandler, type WebSseOptions } from '@ssekit/web';
import { build } from 'esbuild';
import { EventSource } from 'eventsource';
import { afterEach, describe, expect, test } from 'vitest';
import { closeAll, connect, rawGet, until } from '../../core/test/support/clients.js';

const servers: Server[] = [];
const hubs: Hub[] = [];
afterEach(async () => {
  await closeAll();
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    server.close();
  }
  await Promise.all(hubs.splice(0).map((hub) => hub.close()));
});

async function serveWeb(handler: (request: Request) => Promise<Response>): Promise<{ url: string; port: number }> {
  const server = serve({ fetch: handler, port: 0, hostname: '127.0.0.1' }) as Server;
  servers.push(server);
  await new Promise<void>((resolve) => server.once('listening', () => resolve()));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, port };
}

function hub(): Hub {
  const h = createHub();
  hubs.push(h);
  return h;
}

describe('sse(request, …) forms', () => {
  test('a handler gets the open stream; an options object and a handler can be given together', async () => {
    const h = hub();
    const handler: WebSseHandler = (stream) => {
      stream.send({ hello: 'world' }, { event: 'greeting' });
    };
    const { url } = await serveWeb((request) =>
      new URL(request.url).pathname === '/both'
        ? sse(request, { hub: h, topics: ['t'], keepalive: false }, handler)
        : sse(request, handler),
    );
    const alone = await connect(`${url}/alone`);
    expect(alone.status).toBe(200);
    expect(alone.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    expect(alone.headers.get('cache-control')).toBe('no-cache, no-transform');
    expect(alone.headers.get('connection')).not.toBe('close');
    expect((await alone.waitFor(1))[0]).toMatchObject({ type: 'greeting', data: '{"hello":"world"}' });
    const both = await connect(`${url}/both`);
    await both.waitFor(1);
    await h.publish('t', 'live');
    expect((await both.waitFor(2)).map((e) => e.data)).toEqual(['{"hello":"world"}', 'live']);
  });

  test('a source given as the value is piped; one that will not be piped (a refusal) is stopped', async () => {
    let cancelled = 0;
    const items = (): ReadableStream<string> =>
      new ReadableStream({
        start(controller) {
          controller.enqueue('a');
          controller.enqueue('b');
          controller.close();
        },
      });
    const endless = (): ReadableStream<string> =>
      new ReadableStream({
        pull() {},
        cancel() {
          cancelled++;
        },
      });
    const { url } = await serveWeb((request) =>
      new URL(request.url).pathname === '/items'
        ? sse(request, {
            source: items(),
            map: (item) => ({ data: item.toUpperCase() }),
          } satisfies WebSseOptions<string>)
        : sse(request, { source: endless() }),
    );
    const res = await connect(`${url}/items`);
    expect(await res.ended).toBe('end');
    expect(res.events.map((e) => e.data)).toEqual(['A', 'B']);
    const refused = await rawGet(`${url}/endless`, { accept: 'application/json' });
    expect(refused.split('\n')[0]).toBe('406');
    await until(() => cancelled === 1, 2000, 'the refused source to be cancelled');
  });

  test('options a per-request call cannot honour are refused: maxConnections belongs on a group made once', async () => {
    await expect(sse(new Request('http://x/events'), { maxConnections: 1 } as WebSseOptions)).rejects.toThrow(
      /unknown option 'maxConnections'/,
    );
    await expect(sse(new Request('http://x/events'), { waitUntil: 'later' } as never)).rejects.toMatchObject({
      code: 'ERR_SSE_INVALID_OPTION',
    });
  });

  test('refuse() answers 204 and an EventSource stops reconnecting for good', async () => {
    let requests = 0;
    const { url } = await serveWeb(async (request) => {
      requests++;
      return requests === 1 ? sse(request, { retry: 50 }, (stream) => stream.close()) : refuse();
    });
    const es = new EventSource(`${url}/events`);
    await until(() => es.readyState === EventSource.CLOSED, 5000, 'the EventSource to give up');
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(requests).toBe(2);
    es.close();
  });

  test('the client leaving (request.signal or the body cancelled) frees the subscription within a second', async () => {
    const h = hub();
    const { url } = await serveWeb((request) => sse(request, { hub: h, topics: ['t'] }));
    const client = await connect(`${url}/events`);
    await until(() => h.stats().streams === 1, 2000, 'the subscription');
    const left = Date.now();
    client.close();
    await until(() => h.stats().streams === 0, 1000, 'the subscription to be freed');
    expect(Date.now() - left).toBeLessThan(1000);
  });
});

describe('backpressure from the consumer', () => {
  test('a client that stops reading costs a position in the hub log, is cut past the budget, and its connection dropped', async () => {
    const h = createHub({ maxBufferedBytes: 4 * 1024 * 1024 });
    hubs.push(h);
    const { url, port } = await serveWeb((request) =>
      sse(request, { hub: h, topics: ['t'], keepalive: false, sendTimeout: 300 }),
    );
    // A raw socket that sends the request and never reads a byte.
    const stalled = net.connect(port, '127.0.0.1');
    stalled.on('error', () => {});
    stalled.pause();
    stalled.write('GET /events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n');
    const reader = await connect(`${url}/events`);
    await until(() => h.stats().streams === 2, 2000, 'both subscriptions');
    const before = process.memoryUsage().arrayBuffers;
    const payload = 'x'.repeat(10_000);
    for (let i = 0; i < 2000 && h.stats().cut === 0; i++) {
      await h.publish('t', payload);
      if (i % 50 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    expect(h.stats().cut).toBe(1);
    await until(() => h.stats().streams === 1, 2000, 'the stalled stream to leave');
    // What the stalled stream held was the hub's budget, not the burst.
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(16 * 1024 * 1024);
    await h.publish('t', 'after');
    await until(() => reader.events.at(-1)?.data === 'after', 5000, 'the reader to get everything');
    // The cut stream could not end gracefully (its client reads nothing): after sendTimeout the
    // runtime drops the connection rather than keep its unread data.
    const server = servers.at(-1) as Server;
    let connections = -1;
    await until(
      () => {
        server.getConnections((_err, count) => {
          connections = count;
        });
        return connections === 1;
      },
      5000,
      'the stalled connection to be dropped',
    );
    stalled.destroy();
  });
});

describe('the import graph', () => {
  test('bundled for a worker it has no node: import, and runs without Buffer, process or setImmediate', async () => {
    const entry = fileURLToPath(new URL('./fixtures/portable-entry.ts', import.meta.url));
    const result = await build({
      entryPoints: [entry],
      bundle: true,
      write: false,
      format: 'iife',
      globalName: 'portable',
      platform: 'neutral',
      mainFields: ['module', 'main'],
      alias: {
        '@ssekit/core': fileURLToPath(new URL('../../core/src/index.ts', import.meta.url)),
        '@ssekit/web': fileURLToPath(new URL('../src/index.ts', import.meta.url)),
      },
      metafile: true,
      logLevel: 'silent',
    });
    const code = result.outputFiles[0]?.text ?? '';
    const inputs = Object.keys(result.metafile.inputs);
    expect(inputs.filter((path) => path.startsWith('node:'))).toEqual([]);
    expect(code).not.toMatch(/require\(["']node:/);
    // Only the web's globals: what a Worker, Deno or Bun all have.
    const context = vm.createContext({
      TextEncoder,
      TextDecoder,
      ReadableStream,
      Response,
      Request,
      Headers,
      URL,
      URLSearchParams,
      AbortController,
      AbortSignal,
      setTimeout,
      clearTimeout,
      setInterval,
      clearInterval,
      queueMicrotask,
      console,
    });
    vm.runInContext(code, context);
    expect(vm.runInContext('typeof Buffer + typeof process + typeof setImmediate', context)).toBe(
      'undefinedundefinedundefined',
    );
    const run = vm.runInContext('portable.run', context) as () => Promise<string>;
    expect(await run()).toBe('id: 1\ndata: {"n":1}\n\n');
  });
});
