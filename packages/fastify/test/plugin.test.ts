/**
 * The Fastify plugin over the wire, HTTP/1.1: `inject()` (through `collectEvents`) and a real
 * `listen()` with real clients (`eventsource`, streaming `fetch`). Headers from hooks and plugins,
 * status, sources, disconnects, hub resume, refusals before the stream (403, 503), shutdown, and
 * errors after the stream opened. Negotiation is in negotiate.test.ts, HTTP/2 in plugin.http2.test.ts.
 */
import { Readable } from 'node:stream';
import cors from '@fastify/cors';
import { createHub, type EventStream, type Hub, isSseError, SseError, StreamGroup } from '@ssekit/core';
import { collectEvents } from '@ssekit/core/testing';
import ssekit from '@ssekit/fastify';
import { EventSource } from 'eventsource';
import { describe, expect, test } from 'vitest';
import { createApp, deferred, listen, onCleanup, open, until, within } from './helpers.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function hubForTest(options: Parameters<typeof createHub>[0] = {}): Hub {
  const hub = createHub(options);
  onCleanup(() => hub.close());
  return hub;
}

describe('reply.sse()', () => {
  test('inject: opens a stream with the SSE headers and delivers what the handler sends', async () => {
    const { app } = createApp();
    await app.register(ssekit, { keepalive: false });
    app.get('/events', (_request, reply) => {
      const stream = reply.sse();
      stream.send({ hi: 1 });
      stream.send('two\nlines', { event: 'note', id: '7' });
    });

    const got = await collectEvents(app, { path: '/events', count: 2 });
    expect(got.status).toBe(200);
    expect(got.headers['content-type']).toBe('text/event-stream; charset=utf-8');
    expect(got.headers['cache-control']).toBe('no-cache, no-transform');
    expect(got.headers['x-accel-buffering']).toBe('no');
    expect(got.events).toEqual([
      { type: 'message', data: '{"hi":1}', lastEventId: '' },
      { type: 'note', data: 'two\nlines', lastEventId: '7' },
    ]);
  });

  test('listen: HTTP/1.1 headers, and headers set by @fastify/cors and an onRequest hook reach the client', async () => {
    const { app } = createApp();
    await app.register(cors, { origin: 'http://page.test', exposedHeaders: ['x-request-id'] });
    await app.register(ssekit, { keepalive: false });
    app.addHook('onRequest', async (_request, reply) => {
      reply.header('x-request-id', 'req-42');
    });
    app.get('/events', (_request, reply) => {
      reply.sse().send('hello');
    });
    const base = await listen(app);

    const client = await open(`${base}/events`, { origin: 'http://page.test' });
    const headers = client.response.headers;
    expect(client.response.status).toBe(200);
    expect(headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    expect(headers.get('cache-control')).toBe('no-cache, no-transform');
    expect(headers.get('x-accel-buffering')).toBe('no');
    expect(headers.get('connection')).toBe('keep-alive');
    expect(headers.get('content-length')).toBeNull();
    expect(headers.get('access-control-allow-origin')).toBe('http://page.test');
    expect(headers.get('access-control-expose-headers')).toBe('x-request-id');
    expect(headers.get('x-request-id')).toBe('req-42');
    expect((await client.waitForEvents(1))[0]?.data).toBe('hello');

    // The same through inject().
    const injected = await collectEvents(app, { path: '/events', count: 1, headers: { origin: 'http://page.test' } });
    expect(injected.status).toBe(200);
    expect(injected.events[0]?.data).toBe('hello');
    expect(injected.headers['access-control-allow-origin']).toBe('http://page.test');
    expect(injected.headers['x-request-id']).toBe('req-42');

    // And through the real EventSource client, which only opens on 200 + text/event-stream.
    let seen: Headers | undefined;
    const es = new EventSource(`${base}/events`, {
      fetch: async (input, init) => {
        const response = await fetch(input, { ...init, headers: { ...init?.headers, origin: 'http://page.test' } });
        seen = response.headers;
        return response;
      },
    });
    onCleanup(() => es.close());
    const message = await new Promise<MessageEvent>((resolve, reject) => {
      es.onmessage = resolve;
      es.onerror = () => reject(new Error('EventSource failed'));
    });
    expect(message.data).toBe('hello');
    expect(seen?.get('access-control-allow-origin')).toBe('http://page.test');
    expect(seen?.get('x-request-id')).toBe('req-42');
  });

  test('a status set with reply.code() or the status option reaches the client; default 200', async () => {
    const { app } = createApp();
    await app.register(ssekit, { keepalive: false });
    app.get('/code', (_request, reply) => {
      reply.code(201).sse().send('a');
    });
    app.get('/option', (_request, reply) => {
      reply.sse({ status: 202 }).send('b');
    });
    app.get('/plain', (_request, reply) => {
      reply.sse().send('c');
    });
    const base = await listen(app);

    for (const [path, status, data] of [
      ['/code', 201, 'a'],
      ['/option', 202, 'b'],
      ['/plain', 200, 'c'],
    ] as const) {
      const client = await open(`${base}${path}`);
      expect(client.response.status).toBe(status);
      expect(client.response.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
      expect((await client.waitForEvents(1))[0]?.data).toBe(data);
      client.abort();
    }
  });

  test('plugin options are the default stream options; a call overrides them', async () => {
    const { app } = createApp();
    await app.register(ssekit, { keepalive: 40, retry: 1234 });
    app.get('/defaults', (_request, reply) => {
      reply.sse();
    });
    app.get('/override', (_request, reply) => {
      reply.sse({ retry: 99, keepalive: false }).send('x');
    });
    const base = await listen(app);

    const defaults = await open(`${base}/defaults`);
    await until(() => defaults.parser.result.comments.length >= 2, 'two heartbeats');
    expect(defaults.parser.result.retry).toBe(1234);

    const override = await open(`${base}/override`);
    await override.waitForEvents(1);
    expect(override.parser.result.retry).toBe(99);
    // Long enough for several heartbeats at the plugin's 40 ms: the route turned them off.
    await sleep(200);
    expect(override.parser.result.comments).toEqual([]);
  });

  test('a bad option is a normal Fastify error answer with the SseError code, before any stream bytes', async () => {
    const { app } = createApp();
    await app.register(ssekit);
    app.get('/bad', (_request, reply) => {
      reply.sse({ keepalive: -5 });
    });
    const base = await listen(app);
    const response = await fetch(`${base}/bad`, { headers: { accept: 'text/event-stream' } });
    expect(response.status).toBe(500);
    expect(response.headers.get('content-type')).toMatch(/^application\/json/);
    expect(response.headers.get('cache-control')).toBeNull();
    expect(await response.json()).toMatchObject({ code: 'ERR_SSE_INVALID_OPTION' });
  });

  test('a second reply.sse() on the same reply throws ERR_SSE_HEADERS_SENT and leaves the first stream alone', async () => {
    const { app } = createApp();
    await app.register(ssekit, { keepalive: false });
    app.get('/twice', (_request, reply) => {
      const stream = reply.sse();
      try {
        reply.sse();
      } catch (err) {
        stream.send(isSseError(err) ? err.code : 'not an SseError');
      }
    });
    const base = await listen(app);
    const client = await open(`${base}/twice`);
    expect((await client.waitForEvents(1))[0]?.data).toBe('ERR_SSE_HEADERS_SENT');
  });

  test('bad plugin options fail the registration', async () => {
    for (const options of [{ maxConnections: -1 }, { closeRetry: 1.5 }, { retryAfter: -2 }]) {
      const { app } = createApp();
      const error = await app.register(ssekit, options).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(isSseError(error, 'ERR_SSE_INVALID_OPTION')).toBe(true);
    }
  });
});

test('a sync handler may return what reply.sse() returns (or the reply): no "already sent" noise', async () => {
  const { app, logs } = createApp();
  await app.register(ssekit, { keepalive: false });
  app.get('/returns-stream', (_request, reply) => reply.sse(['a', 'b']));
  app.get('/returns-reply', (_request, reply) => {
    reply.sse(['c']);
    return reply;
  });
  app.get('/async', async (_request, reply) => reply.sse(['d']));
  const base = await listen(app);
  for (const [path, data] of [
    ['/returns-stream', ['a', 'b']],
    ['/returns-reply', ['c']],
    ['/async', ['d']],
  ] as const) {
    const client = await open(`${base}${path}`);
    await within(client.done, 5000, 'the stream end');
    expect(client.events.map((e) => e.data)).toEqual(data);
  }
  expect(logs).toEqual([]);
});

describe('reply.sse(source)', () => {
  async function* count(n: number) {
    for (let i = 1; i <= n; i++) {
      await sleep(1);
      yield i;
    }
  }

  test('delivers every item of an async iterable in order, then ends (inject and listen)', async () => {
    const { app } = createApp();
    await app.register(ssekit, { keepalive: false });
    app.get('/feed', (_request, reply) => {
      reply.sse(count(50));
    });
    app.get('/mapped', (_request, reply) => {
      reply.sse(Readable.from(['a', 'b', 'c']), {
        map: (item: string) => ({ data: { item }, event: 'letter', id: item }),
      });
    });

    // No count: collectEvents reads until the server ends the stream.
    const injected = await collectEvents(app, { path: '/feed' });
    expect(injected.events.map((e) => e.data)).toEqual(Array.from({ length: 50 }, (_, i) => String(i + 1)));

    const base = await listen(app);
    const client = await open(`${base}/feed`);
    await within(client.done, 5000, 'the stream end');
    expect(client.ended).toBe(true);
    expect(client.events.map((e) => Number(e.data))).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));

    const mapped = await open(`${base}/mapped`);
    await within(mapped.done, 5000, 'the stream end');
    expect(mapped.events).toEqual([
      { type: 'letter', data: '{"item":"a"}', lastEventId: 'a' },
      { type: 'letter', data: '{"item":"b"}', lastEventId: 'b' },
      { type: 'letter', data: '{"item":"c"}', lastEventId: 'c' },
    ]);
  });

  test('a source that throws ends only its stream, sends the shaped error event and logs through reply.log', async () => {
    const { app, logs } = createApp();
    await app.register(ssekit, { keepalive: false });
    async function* failing() {
      yield 1;
      throw new Error('database gone');
    }
    app.get('/failing', (_request, reply) => {
      reply.sse(failing(), { errorEvent: (err) => ({ event: 'error', data: (err as Error).message }) });
    });
    let other: EventStream | undefined;
    app.get('/other', (_request, reply) => {
      other = reply.sse();
    });
    const base = await listen(app);

    const bystander = await open(`${base}/other`);
    const client = await open(`${base}/failing`);
    await within(client.done, 5000, 'the failing stream end');
    expect(client.events).toEqual([
      { type: 'message', data: '1', lastEventId: '' },
      { type: 'error', data: 'database gone', lastEventId: '' },
    ]);
    await until(() => logs.some((line) => line.err?.code === 'ERR_SSE_SOURCE'), 'the logged source error');
    const line = logs.find((l) => l.err?.code === 'ERR_SSE_SOURCE');
    expect(line?.level).toBe(50);
    expect(line?.msg).toBe('ssekit: stream error');
    // Logged with the request's id (the stream keeps the id, not the request).
    expect((line as { reqId?: unknown } | undefined)?.reqId).toEqual(expect.any(String));

    // The other stream is untouched.
    expect(other?.isOpen).toBe(true);
    other?.send('still here');
    expect((await bystander.waitForEvents(1))[0]?.data).toBe('still here');
  });

  test('a client disconnect aborts signal within 1 s and runs the async generator finally', async () => {
    const { app } = createApp();
    await app.register(ssekit, { keepalive: false });
    const aborted = deferred<number>();
    const finallyRan = deferred<number>();
    app.get('/ticks', (_request, reply) => {
      async function* ticks() {
        try {
          for (let i = 0; ; i++) {
            yield i;
            await sleep(20);
          }
        } finally {
          finallyRan.resolve(Date.now());
        }
      }
      const stream = reply.sse(ticks());
      stream.signal.addEventListener('abort', () => aborted.resolve(Date.now()));
    });
    const base = await listen(app);

    const client = await open(`${base}/ticks`);
    await client.waitForEvents(3);
    const leftAt = Date.now();
    client.abort();
    expect((await within(aborted.promise, 1000, 'signal abort')) - leftAt).toBeLessThan(1000);
    expect((await within(finallyRan.promise, 1000, 'the generator finally')) - leftAt).toBeLessThan(1000);
  });
});

describe('reply.sse({ hub, topics })', () => {
  test('subscribes, and a client back with Last-Event-ID gets exactly the missed events, then live ones', async () => {
    const { app } = createApp();
    await app.register(ssekit, { keepalive: false });
    const hub = hubForTest({ history: { size: 100 } });
    app.get('/prices', (_request, reply) => {
      reply.sse({ hub, topics: ['prices'] });
    });
    const base = await listen(app);

    const first = await open(`${base}/prices`);
    await until(() => hub.stats().streams === 1, 'the subscription');
    for (let i = 0; i < 3; i++) await hub.publish('prices', { i });
    const seen = await first.waitForEvents(3);
    expect(seen.map((e) => JSON.parse(e.data).i)).toEqual([0, 1, 2]);
    first.abort();
    await until(() => hub.stats().streams === 0, 'the subscription to end');

    // Missed while away, plus noise on another topic.
    for (let i = 3; i < 6; i++) await hub.publish('prices', { i });
    await hub.publish('news', 'not for prices');

    const back = await open(`${base}/prices`, { 'last-event-id': seen[2]?.lastEventId as string });
    await back.waitForEvents(3);
    await hub.publish('prices', { i: 6 });
    await back.waitForEvents(4);
    await hub.publish('prices', { i: 'end' });
    await back.waitForEvents(5);
    expect(back.events.map((e) => JSON.parse(e.data).i)).toEqual([3, 4, 5, 6, 'end']);
    expect(new Set(back.events.map((e) => e.lastEventId)).size).toBe(5);

    // The lastEventId query parameter (polyfills) works the same, through inject().
    const viaQuery = await collectEvents(app, {
      path: `/prices?lastEventId=${encodeURIComponent(back.events[3]?.lastEventId as string)}`,
      count: 1,
    });
    expect(JSON.parse(viaQuery.events[0]?.data as string)).toEqual({ i: 'end' });
  });

  test('the real EventSource client reconnects with its Last-Event-ID and misses nothing', async () => {
    const { app } = createApp();
    await app.register(ssekit, { keepalive: false });
    const hub = hubForTest();
    const streams: EventStream[] = [];
    app.get('/feed', (_request, reply) => {
      streams.push(reply.sse({ hub, topics: 'feed', retry: 20 }));
    });
    const base = await listen(app);

    const received: string[] = [];
    const es = new EventSource(`${base}/feed`);
    onCleanup(() => es.close());
    es.onmessage = (event) => received.push(event.data);
    await until(() => hub.stats().streams === 1, 'the first connection');
    await hub.publish('feed', 'one');
    await hub.publish('feed', 'two');
    await until(() => received.length === 2, 'two events');

    // The server drops the connection; events published meanwhile are replayed on reconnect.
    streams[0]?.close();
    await hub.publish('feed', 'three');
    await hub.publish('feed', 'four');
    await until(() => streams.length === 2 && hub.stats().streams === 1, 'the reconnection');
    await hub.publish('feed', 'five');
    await until(() => received.length === 5, 'five events');
    expect(received).toEqual(['one', 'two', 'three', 'four', 'five']);
    expect(streams[1]?.lastEventId).toBeDefined();
  });

  test('filter: a stream gets only the messages its filter accepts', async () => {
    const { app } = createApp();
    await app.register(ssekit, { keepalive: false });
    const hub = hubForTest();
    app.get('/alerts', (request, reply) => {
      const min = Number((request.query as { min?: string }).min ?? 0);
      reply.sse({ hub, topics: 'alerts', filter: (message) => JSON.parse(message.data).level >= min });
    });
    const base = await listen(app);
    const all = await open(`${base}/alerts`);
    const severe = await open(`${base}/alerts?min=3`);
    await until(() => hub.stats().streams === 2, 'two subscriptions');
    for (const level of [1, 3, 2, 5]) await hub.publish('alerts', { level });
    await all.waitForEvents(4);
    await severe.waitForEvents(2);
    expect(all.events.map((e) => JSON.parse(e.data).level)).toEqual([1, 3, 2, 5]);
    expect(severe.events.map((e) => JSON.parse(e.data).level)).toEqual([3, 5]);
  });

  test('an id no longer in history gives the gap event, then live events', async () => {
    const { app } = createApp();
    await app.register(ssekit, { keepalive: false });
    const hub = hubForTest({ history: { size: 2 } });
    app.get('/news', (_request, reply) => {
      reply.sse({ hub, topics: ['news'] });
    });
    const base = await listen(app);

    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(await hub.publish('news', `n${i}`));
    const client = await open(`${base}/news`, { 'last-event-id': ids[0] as string });
    const [gap] = await client.waitForEvents(1);
    expect(gap?.type).toBe('ssekit-gap');
    expect(JSON.parse(gap?.data as string)).toMatchObject({ lastEventId: ids[0] });
    await hub.publish('news', 'live');
    expect((await client.waitForEvents(2))[1]?.data).toBe('live');
  });

  test('topics that refuse the request answer 403 (or their own status) before any stream bytes', async () => {
    const { app } = createApp();
    await app.register(ssekit);
    const hub = hubForTest();
    app.get('/private', (_request, reply) => {
      reply.sse({
        hub,
        topics: () => {
          throw new SseError('ERR_SSE_FORBIDDEN', 'not your topic', { status: 403 });
        },
      });
    });
    app.get('/login', (_request, reply) => {
      reply.sse({
        hub,
        topics: (req) =>
          req.headers.authorization ? ['user'] : Object.assign(new Error('log in first'), { statusCode: 401 }),
      });
    });
    app.get('/no', (_request, reply) => {
      reply.sse({ hub, topics: () => false });
    });
    app.get('/empty', (_request, reply) => {
      reply.sse({ hub, topics: () => [] });
    });
    const base = await listen(app);

    const forbidden = await fetch(`${base}/private`, { headers: { accept: 'text/event-stream' } });
    expect(forbidden.status).toBe(403);
    expect(forbidden.headers.get('content-type')).toMatch(/^application\/json/);
    expect(await forbidden.json()).toMatchObject({ code: 'ERR_SSE_FORBIDDEN', message: 'not your topic' });

    const no = await fetch(`${base}/no`);
    expect(no.status).toBe(403);
    expect(await no.json()).toMatchObject({ code: 'ERR_SSE_FORBIDDEN' });

    const unauthorized = await fetch(`${base}/login`);
    expect(unauthorized.status).toBe(401);
    expect(await unauthorized.json()).toMatchObject({ message: 'log in first' });
    const authorized = await open(`${base}/login`, { authorization: 'Bearer x' });
    expect(authorized.response.status).toBe(200);

    // Empty topics from a topics function are the app's bug: a fault, answered with a stream that
    // tells the code and asks the client to come back, never a final 4xx.
    const empty = await fetch(`${base}/empty`);
    expect(empty.status).toBe(200);
    expect(await empty.text()).toMatch(
      /^retry: \d+\n\nevent: ssekit-error\ndata: {"code":"ERR_SSE_INVALID_TOPIC"}\n\n$/,
    );

    const injected = await app.inject({ method: 'GET', url: '/private', headers: { accept: 'text/event-stream' } });
    expect(injected.statusCode).toBe(403);
    expect(injected.headers['content-type']).not.toMatch(/event-stream/);
    expect(injected.payload).not.toMatch(/^data:/m);
    await until(() => hub.stats().streams === 1, 'only the authorized stream');
  });
});

describe('limits', () => {
  test('past the plugin maxConnections: 503 + Retry-After as a normal Fastify answer, until a slot frees', async () => {
    const { app } = createApp();
    await app.register(ssekit, { maxConnections: 1, retryAfter: 7, keepalive: false });
    app.get('/events', (_request, reply) => {
      reply.sse().send('in');
    });
    const base = await listen(app);

    const first = await open(`${base}/events`);
    await first.waitForEvents(1);
    // The plugin's group, like Express's middleware.group.
    expect(app.ssekit.group.size).toBe(1);
    const refused = await fetch(`${base}/events`, { headers: { accept: 'text/event-stream' } });
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('7');
    expect(refused.headers.get('content-type')).toMatch(/^application\/json/);
    expect(await refused.json()).toMatchObject({ code: 'ERR_SSE_TOO_MANY_CONNECTIONS' });

    const injected = await app.inject({ method: 'GET', url: '/events', headers: { accept: 'text/event-stream' } });
    expect(injected.statusCode).toBe(503);
    expect(injected.headers['retry-after']).toBe('7');

    first.abort();
    let next: Awaited<ReturnType<typeof open>> | undefined;
    for (let attempt = 0; attempt < 100; attempt++) {
      next = await open(`${base}/events`);
      if (next.response.status === 200) break;
      next.abort();
      await sleep(10);
    }
    expect(next?.response.status).toBe(200);
  });

  test("past a hub's maxConnections or a route group's: 503 + Retry-After", async () => {
    const { app } = createApp();
    await app.register(ssekit, { keepalive: false });
    const hub = hubForTest({ maxConnections: 1 });
    const group = new StreamGroup({ maxConnections: 1, retryAfter: 2 });
    app.get('/hub', (_request, reply) => {
      reply.sse({ hub, topics: 'all' });
    });
    app.get('/route', (_request, reply) => {
      reply.sse({ group });
    });
    const base = await listen(app);

    const inHub = await open(`${base}/hub`);
    expect(inHub.response.status).toBe(200);
    await until(() => hub.stats().streams === 1, 'the subscription');
    const refused = await fetch(`${base}/hub`);
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('5');
    expect(hub.stats().refused).toBe(1);

    const inRoute = await open(`${base}/route`);
    expect(inRoute.response.status).toBe(200);
    const refusedRoute = await fetch(`${base}/route`);
    expect(refusedRoute.status).toBe(503);
    expect(refusedRoute.headers.get('retry-after')).toBe('2');
    expect(group.size).toBe(1);
  });
});

describe('shutdown', () => {
  test('app.close() ends every open stream with a retry hint and returns promptly', async () => {
    const { app } = createApp({ forceCloseConnections: 'idle' });
    await app.register(ssekit, { keepalive: false });
    const hub = hubForTest();
    app.get('/plain', (_request, reply) => {
      reply.sse().send('open');
    });
    app.get('/hub', (_request, reply) => {
      reply.sse({ hub, topics: 't' });
    });
    const base = await listen(app);

    const plain = await open(`${base}/plain`);
    const subscribed = await open(`${base}/hub`);
    await plain.waitForEvents(1);
    await until(() => hub.stats().streams === 1, 'the subscription');

    await within(app.close(), 5000, 'app.close()');
    await within(Promise.all([plain.done, subscribed.done]), 2000, 'the clients to see the end');
    expect(plain.ended).toBe(true);
    expect(subscribed.ended).toBe(true);
    expect(plain.parser.result.retry).toBe(1000);
    expect(subscribed.parser.result.retry).toBe(1000);
    expect(hub.stats().streams).toBe(0);
  });

  test('closeRetry sets the hint; an EventSource client sees the end and tries to come back', async () => {
    const { app } = createApp({ forceCloseConnections: 'idle' });
    await app.register(ssekit, { keepalive: false, closeRetry: 250 });
    app.get('/events', (_request, reply) => {
      reply.sse().send('hi');
    });
    const base = await listen(app);

    const client = await open(`${base}/events`);
    const es = new EventSource(`${base}/events`);
    onCleanup(() => es.close());
    await new Promise((resolve) => {
      es.onmessage = resolve;
    });
    const errored = new Promise((resolve) => {
      es.onerror = resolve;
    });
    await within(app.close(), 5000, 'app.close()');
    await within(client.done, 2000, 'the end');
    expect(client.parser.result.retry).toBe(250);
    // EventSource reports the dropped connection (and would reconnect after 250 ms).
    await within(errored, 2000, 'the EventSource error event');
  });
});

describe('errors after the stream opened', () => {
  test('a handler that throws after reply.sse() does not produce a second response or crash', async () => {
    const { app, logs } = createApp();
    await app.register(ssekit, { keepalive: false });
    app.get('/sync', (_request, reply) => {
      const stream = reply.sse();
      setImmediate(() => stream.send('after sync throw'));
      throw new Error('sync boom');
    });
    app.get('/async', async (_request, reply) => {
      const stream = reply.sse();
      setImmediate(() => stream.send('after async throw'));
      await sleep(1);
      throw new Error('async boom');
    });
    app.get('/health', async () => ({ ok: true }));
    const base = await listen(app);

    for (const [path, data] of [
      ['/sync', 'after sync throw'],
      ['/async', 'after async throw'],
    ] as const) {
      const client = await open(`${base}${path}`);
      expect(client.response.status).toBe(200);
      expect(client.response.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
      expect((await client.waitForEvents(1))[0]?.data).toBe(data);
      await sleep(50);
      // Nothing but SSE framing: no JSON error body written into the stream.
      expect(client.text()).not.toMatch(/boom|statusCode/);
      expect(client.ended).toBe(false);
    }
    await until(() => logs.some((line) => line.err?.message === 'async boom'), 'the async error in the log');
    // The sync throw is logged as the error it is, not as Fastify's "Reply was already sent".
    expect(logs.find((line) => line.err?.message === 'sync boom')?.level).toBe(50);
    expect(logs.some((line) => line.err?.code === 'FST_ERR_REP_ALREADY_SENT')).toBe(false);
    expect(await (await fetch(`${base}/health`)).json()).toEqual({ ok: true });
  });
});
