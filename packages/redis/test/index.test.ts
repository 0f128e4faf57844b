import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createEventStream, createHub, type Hub, isSseError, type SseError } from '@ssekit/core';
import { collectEvents } from '@ssekit/core/testing';
import { type RedisBackplane, redisBackplane } from '@ssekit/redis';
import { EventSource, type EventSourceFetchInit } from 'eventsource';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import {
  buildDist,
  deleteKeys,
  describeIf,
  FreezingProxy,
  freePort,
  hasRedisServer,
  Instance,
  REDIS_URL,
  RedisServer,
  redisReachable,
  uniqueKey,
} from './redis-server.js';

const describeRedis = describeIf(await redisReachable(), `Redis at ${REDIS_URL}`);

// Everything a test opens, closed after it whatever happened.
const cleanups: (() => unknown)[] = [];
const keys: string[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  await deleteKeys(...keys.splice(0));
});

function key(name: string): string {
  const k = uniqueKey(name);
  keys.push(k);
  return k;
}

function backplane(options: Parameters<typeof redisBackplane>[0] = {}): RedisBackplane {
  const b = redisBackplane({ url: REDIS_URL, blockMs: 1000, ...options });
  cleanups.push(() => b.close());
  return b;
}

function hubOn(b: RedisBackplane, options: Parameters<typeof createHub>[0] = {}): Hub {
  const hub = createHub({ backplane: b, ...options });
  cleanups.push(() => hub.close());
  return hub;
}

/** Serves `GET /events?topics=a,b` from `hub` on an ephemeral port. */
async function serve(hub: Hub): Promise<string> {
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const stream = createEventStream(req, res, { retry: 20, keepalive: false });
    hub.subscribe(stream, (url.searchParams.get('topics') ?? 'default').split(',')).catch(() => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

interface Received {
  type: string;
  data: string;
  id: string;
}

/** A real `EventSource` client; `route` picks the URL of each (re)connection, so a reconnect can go elsewhere. */
function client(route: (attempt: number) => string) {
  const events: Received[] = [];
  const requests: { url: string; lastEventId: string | undefined }[] = [];
  let opens = 0;
  let errors = 0;
  const source = new EventSource(route(0), {
    fetch: (_input: string | URL, init?: EventSourceFetchInit) => {
      const url = route(requests.length);
      const headers = (init?.headers ?? {}) as Record<string, string>;
      requests.push({ url, lastEventId: headers['Last-Event-ID'] });
      return fetch(url, init);
    },
  });
  const record = (event: MessageEvent) => events.push({ type: event.type, data: event.data, id: event.lastEventId });
  source.addEventListener('message', record);
  source.addEventListener('ssekit-gap', record);
  source.addEventListener('open', () => opens++);
  source.addEventListener('error', () => errors++);
  cleanups.push(() => source.close());
  return {
    source,
    events,
    requests,
    get opens() {
      return opens;
    },
    get errors() {
      return errors;
    },
    data: () => events.map((e) => e.data),
    opened: () => waitFor(() => opens > 0, 'the client to open'),
  };
}

async function waitFor(condition: () => boolean, what: string, timeout = 10_000): Promise<void> {
  const deadline = Date.now() + timeout;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const range = (from: number, to: number): string[] => Array.from({ length: to - from }, (_, i) => String(from + i));

describeRedis('redisBackplane across processes', () => {
  let a: Instance;
  let b: Instance;
  let stream: string;

  beforeAll(async () => {
    buildDist();
    stream = uniqueKey('processes');
    [a, b] = await Promise.all([
      new Instance({ REDIS_URL, STREAM: stream }).start(),
      new Instance({ REDIS_URL, STREAM: stream }).start(),
    ]);
  });

  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    await deleteKeys(stream);
  });

  it('delivers what instance A publishes to clients of instance B, in order, with the ids A got', async () => {
    const prices = client(() => `${b.url}/events?topics=prices`);
    const news = client(() => `${b.url}/events?topics=news`);
    const both = client(() => `${a.url}/events?topics=prices,news`);
    await Promise.all([prices.opened(), news.opened(), both.opened()]);

    const ids: string[] = [];
    for (let i = 0; i < 40; i++) {
      ids.push(await a.publish('prices', String(i)));
      if (i % 10 === 0) await a.publish('news', `news ${i}`);
    }
    await waitFor(() => prices.events.length === 40 && news.events.length === 4, 'instance B to deliver');
    await waitFor(() => both.events.length === 44, 'instance A to deliver');

    expect(prices.data()).toEqual(range(0, 40));
    // The SSE id is the Redis entry id A's publish returned: the same on every instance.
    expect(prices.events.map((e) => e.id)).toEqual(ids);
    expect(news.data()).toEqual(['news 0', 'news 10', 'news 20', 'news 30']);
    expect(both.data().filter((d) => !d.startsWith('news'))).toEqual(range(0, 40));
  });

  it('replays on B exactly the events after a Last-Event-ID that A issued, for the client topics', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) {
      ids.push(await a.publish(i % 2 ? 'odd' : 'even', String(i)));
    }
    const collected = await collectEvents(`${b.url}/events?topics=even`, { lastEventId: ids[3], count: 3 });
    expect(collected.events.map((e) => e.data)).toEqual(['4', '6', '8']);
    expect(collected.events.map((e) => e.lastEventId)).toEqual([ids[4], ids[6], ids[8]]);
  });

  it('a client reconnecting to the other instance resumes with no loss and no duplicate while publishes go on', async () => {
    for (let round = 0; round < 3; round++) {
      const topic = `round-${round}`;
      // The first connection goes to A; every reconnection goes to B.
      const c = client((attempt) => `${attempt === 0 ? a.url : b.url}/events?topics=${topic}`);
      await c.opened();
      const total = 100;
      let sent = 0;
      const publishing = (async () => {
        for (; sent < total; sent++) await (sent % 2 ? b : a).publish(topic, String(sent));
      })();
      await waitFor(() => c.events.length >= 20, 'events before the drop');
      await a.dropStreams();
      await publishing;
      await waitFor(() => c.events.length >= total, `all ${total} events`);
      await new Promise((resolve) => setTimeout(resolve, 50));

      expect(c.data()).toEqual(range(0, total));
      expect(c.requests.length).toBe(2);
      expect(c.requests[1]?.url.startsWith(b.url)).toBe(true);
      expect(c.requests[1]?.lastEventId).toMatch(/^\d+-\d+$/);
      c.source.close();
    }
  });
});

describeRedis('redisBackplane', () => {
  it('gives the gap event for an id trimmed away by maxLen, then live events', async () => {
    const stream = key('trim');
    const hub = hubOn(backplane({ stream, maxLen: 10 }));
    const url = await serve(hub);
    const ids: string[] = [];
    for (let i = 0; i < 300; i++) ids.push(await hub.publish('t', String(i)));
    const redis = new Redis(REDIS_URL);
    cleanups.push(() => redis.disconnect());
    const oldest = (await redis.xrange(stream, '-', '+', 'COUNT', 1))[0]?.[0];
    expect(await redis.xlen(stream)).toBeLessThan(300);

    const reading = collectEvents(`${url}/events?topics=t`, { lastEventId: ids[0], count: 2 });
    await new Promise((resolve) => setTimeout(resolve, 100));
    await hub.publish('t', 'live');
    const { events } = await reading;
    expect(events[0]?.type).toBe('ssekit-gap');
    expect(JSON.parse(events[0]?.data ?? '')).toEqual({ lastEventId: ids[0], oldestId: oldest });
    expect(events[1]?.data).toBe('live');
  });

  it('a client that resumes on B with an id B has not delivered yet waits for B, gets no false gap', async () => {
    const stream = key('outrun');
    // B talks to Redis through a proxy that holds replies back 150 ms: its reader lags behind A.
    const slow = await new FreezingProxy(REDIS_URL, 150).start();
    cleanups.push(() => slow.close());
    const a = hubOn(backplane({ stream }));
    const b = hubOn(backplane({ stream, url: slow.url }));
    const urlB = await serve(b);
    await Promise.all([(a.backplane as RedisBackplane).ready, (b.backplane as RedisBackplane).ready]);
    for (let round = 0; round < 5; round++) {
      // The id comes straight from A's XADD; B's reader learns of it only a moment later.
      const id = await a.publish('t', `r${round}-0`);
      const reading = collectEvents(`${urlB}/events?topics=t`, { lastEventId: id, count: 2 });
      await a.publish('t', `r${round}-1`);
      await a.publish('t', `r${round}-2`);
      const { events } = await reading;
      expect(events.map((e) => [e.type, e.data])).toEqual([
        ['message', `r${round}-1`],
        ['message', `r${round}-2`],
      ]);
    }
  });

  it('gives the gap event for an id that is not a stream id, or one past what was delivered', async () => {
    const hub = hubOn(backplane({ stream: key('unknown') }));
    const url = await serve(hub);
    const first = await hub.publish('t', 'a');
    for (const lastEventId of ['garbage', '1-2-3', '99999999999999-0', '18446744073709551616-0']) {
      const { events } = await collectEvents(`${url}/events?topics=t`, { lastEventId, count: 1 });
      expect(events[0]?.type).toBe('ssekit-gap');
      expect(JSON.parse(events[0]?.data ?? '')).toEqual({ lastEventId, oldestId: first });
    }
  });

  it('replays everything after the id a client got on an empty stream when nothing was trimmed', async () => {
    const stream = key('empty');
    const hub = hubOn(backplane({ stream }));
    const url = await serve(hub);
    await (hub.backplane as RedisBackplane).ready;
    // A new subscriber is given the position as its id: 0-0 on an empty stream.
    const c = client(() => `${url}/events?topics=t`);
    await c.opened();
    expect(hub.backplane.position).toBe('0-0');
    c.source.close();
    for (let i = 0; i < 5; i++) await hub.publish('t', String(i));
    const { events } = await collectEvents(`${url}/events?topics=t`, { lastEventId: '0-0', count: 5 });
    expect(events.map((e) => e.data)).toEqual(range(0, 5));
  });

  it('pages a long replay (readCount) and keeps topics apart', async () => {
    const stream = key('pages');
    const hub = hubOn(backplane({ stream, readCount: 7 }));
    const url = await serve(hub);
    const first = await hub.publish('t', 'start');
    for (let i = 0; i < 60; i++) await hub.publish(i % 3 === 0 ? 'other' : 't', String(i));
    const expected = range(0, 60).filter((n) => Number(n) % 3 !== 0);
    const { events } = await collectEvents(`${url}/events?topics=t`, {
      lastEventId: first,
      count: expected.length,
    });
    expect(events.map((e) => e.data)).toEqual(expected);
  });

  it('serializes a published object once for subscribers of every instance', async () => {
    const stream = key('serialize');
    let calls = 0;
    const serialize = (value: unknown): string => {
      calls++;
      return JSON.stringify(value);
    };
    const hubA = hubOn(backplane({ stream }), { serialize });
    const hubB = hubOn(backplane({ stream }), { serialize });
    const [urlA, urlB] = await Promise.all([serve(hubA), serve(hubB)]);
    const clients = [...Array(10)].map((_, i) => client(() => `${i % 2 ? urlA : urlB}/events?topics=p`));
    await Promise.all(clients.map((c) => c.opened()));
    await hubA.publish('p', { price: 42 });
    await waitFor(() => clients.every((c) => c.events.length === 1), 'every client');
    for (const c of clients) expect(c.data()).toEqual(['{"price":42}']);
    expect(calls).toBe(1);
  });

  it('keeps topics apart and delivers an event for two topics once to a stream holding both', async () => {
    const stream = key('topics');
    const hubA = hubOn(backplane({ stream }));
    const hubB = hubOn(backplane({ stream }));
    const url = await serve(hubB);
    const onA = client(() => `${url}/events?topics=a`);
    const onB = client(() => `${url}/events?topics=b`);
    const onBoth = client(() => `${url}/events?topics=a,b`);
    await Promise.all([onA.opened(), onB.opened(), onBoth.opened()]);
    await hubA.publish('a', 'only a');
    await hubA.publish('b', 'only b');
    await hubA.publish(['a', 'b'], 'both');
    await hubA.publish('c', 'nobody');
    await hubA.publish('a', 'end');
    await waitFor(() => onA.events.length === 3 && onBoth.events.length === 4, 'deliveries');
    await waitFor(() => onB.events.length === 2, 'deliveries to b');
    expect(onA.data()).toEqual(['only a', 'both', 'end']);
    expect(onB.data()).toEqual(['only b', 'both']);
    expect(onBoth.data()).toEqual(['only a', 'only b', 'both', 'end']);
  });

  it('takes a caller id only when it is a stream id after the last one', async () => {
    const stream = key('ids');
    const hub = hubOn(backplane({ stream }));
    const seen: string[] = [];
    hub.backplane.subscribe((m) => seen.push(m.id));
    const auto = await hub.publish('t', 'auto');
    const [ms] = auto.split('-');
    const mine = `${BigInt(ms as string) + 1000n}-7`;
    expect(await hub.publish('t', 'mine', { id: mine })).toBe(mine);
    await expect(hub.publish('t', 'old', { id: '1-0' })).rejects.toMatchObject({ code: 'ERR_SSE_BACKPLANE' });
    await expect(hub.publish('t', 'x', { id: 'order-42' })).rejects.toMatchObject({ code: 'ERR_SSE_INVALID_FIELD' });
    await waitFor(() => seen.length === 2, 'delivery');
    expect(seen).toEqual([auto, mine]);
  });

  it('delivers a publish made before startup finished to its own subscribers', async () => {
    const b = backplane({ stream: key('startup') });
    const seen: string[] = [];
    b.subscribe((m) => seen.push(m.data));
    expect(b.position).toBeUndefined();
    const id = await b.publish({ topics: ['t'], data: 'early' });
    await waitFor(() => seen.length === 1, 'the early message');
    expect(seen).toEqual(['early']);
    expect(b.position).toBe(id);
  });

  it('rejects publish and replay at once when Redis is unreachable from the start, and reports it once', async () => {
    const errors: SseError[] = [];
    const port = await freePort();
    const b = redisBackplane({
      url: `redis://127.0.0.1:${port}`,
      stream: 'never',
      onError: (e) => errors.push(e),
      redisOptions: { retryStrategy: () => 20 },
    });
    cleanups.push(() => b.close());
    await waitFor(() => errors.length > 0, 'the connection error');
    await expect(b.publish({ topics: ['t'], data: 'x' })).rejects.toMatchObject({ code: 'ERR_SSE_BACKPLANE' });
    await expect(b.replay('1-0', ['t'], undefined)).rejects.toMatchObject({ code: 'ERR_SSE_BACKPLANE' });
    // Many reconnection attempts, one report.
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(errors).toHaveLength(1);
    expect(isSseError(errors[0], 'ERR_SSE_BACKPLANE')).toBe(true);
    await b.close();
    await expect(b.ready).rejects.toMatchObject({ code: 'ERR_SSE_CLOSED' });
  });

  it('replaces a reader connection that stops answering (half-open TCP) and delivers what it missed', async () => {
    const stream = key('halfopen');
    const proxy = await new FreezingProxy(REDIS_URL).start();
    const errors: SseError[] = [];
    const b = backplane({ url: proxy.url, stream, blockMs: 100, onError: (e) => errors.push(e) });
    cleanups.push(() => proxy.close());
    const seen: string[] = [];
    b.subscribe((m) => seen.push(m.data));
    await b.publish({ topics: ['t'], data: 'before' });
    await waitFor(() => seen.length === 1, 'delivery');

    proxy.freeze();
    const direct = new Redis(REDIS_URL);
    cleanups.push(() => direct.disconnect());
    await direct.xadd(stream, '*', 'topics', '["t"]', 'data', 'after');
    // Nothing closes the frozen connection: only the watchdog (2 x blockMs + 1 s) gets the reader going.
    await waitFor(() => seen.length === 2, 'delivery over a new connection', 8000);
    expect(seen).toEqual(['before', 'after']);
    expect(errors.map((e) => e.message).join('\n')).toMatch(/no answer to XREAD/);
  });

  it('close() stops delivery and leaves a caller-given client open', async () => {
    const stream = key('close');
    const own = new Redis(REDIS_URL);
    cleanups.push(() => own.disconnect());
    const b = redisBackplane({ client: own, stream, blockMs: 1000 });
    const seen: string[] = [];
    b.subscribe((m) => seen.push(m.data));
    await b.publish({ topics: ['t'], data: 'before' });
    await waitFor(() => seen.length === 1, 'delivery');
    await b.close();
    await expect(b.publish({ topics: ['t'], data: 'x' })).rejects.toMatchObject({ code: 'ERR_SSE_CLOSED' });
    await own.xadd(stream, '*', 'topics', '["t"]', 'data', 'after');
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(seen).toEqual(['before']);
    expect(own.status).toBe('ready');
    expect(await own.ping()).toBe('PONG');
  });

  it('reports and skips entries it cannot read, and goes on', async () => {
    const stream = key('malformed');
    const errors: SseError[] = [];
    const b = backplane({ stream, onError: (e) => errors.push(e) });
    const seen: string[] = [];
    b.subscribe((m) => seen.push(m.data));
    await b.ready;
    const redis = new Redis(REDIS_URL);
    cleanups.push(() => redis.disconnect());
    await redis.xadd(stream, '*', 'foo', 'bar');
    await redis.xadd(stream, '*', 'topics', 'not json', 'data', 'x');
    await b.publish({ topics: ['t'], data: 'fine' });
    await waitFor(() => seen.length === 1, 'the good entry');
    expect(seen).toEqual(['fine']);
    expect(errors.map((e) => e.code)).toEqual(['ERR_SSE_BACKPLANE', 'ERR_SSE_BACKPLANE']);
  });

  it('refuses bad options with ERR_SSE_INVALID_OPTION', () => {
    const bad = [
      { maxLen: 0 },
      { maxLen: 1.5 },
      { blockMs: -1 },
      { readCount: Number.NaN },
      { stream: '' },
      { url: 'redis://x', client: {} as Redis },
    ];
    for (const options of bad) {
      expect(() => redisBackplane(options)).toThrow(expect.objectContaining({ code: 'ERR_SSE_INVALID_OPTION' }));
    }
  });
});

describeIf(hasRedisServer(), 'the redis-server binary')('redisBackplane when Redis restarts', () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = new RedisServer(await freePort());
    await server.start();
  });
  afterAll(() => server?.stop());

  it('rejects publishes during the outage and delivers everything accepted exactly once to a client that stays connected', async () => {
    const errors: SseError[] = [];
    const b = redisBackplane({
      url: server.url,
      stream: 'restart',
      blockMs: 500,
      onError: (e) => errors.push(e),
      // Reconnect a little later than the test's own publisher, so entries wait for the reader.
      redisOptions: { retryStrategy: () => 300 },
    });
    cleanups.push(() => b.close());
    const hub = hubOn(b);
    const url = await serve(hub);
    const c = client(() => `${url}/events?topics=t`);
    await c.opened();

    for (let i = 0; i < 5; i++) await hub.publish('t', String(i));
    await waitFor(() => c.events.length === 5, 'events before the outage');
    // Accepted (fsync'd) right before the crash: the reader may not have read them yet.
    await hub.publish('t', '5');
    await hub.publish('t', '6');
    await server.kill();

    let rejected = 0;
    for (let i = 0; i < 3; i++) {
      const error = await hub.publish('t', 'lost').catch((e: unknown) => e);
      expect(isSseError(error, 'ERR_SSE_BACKPLANE')).toBe(true);
      rejected++;
    }
    expect(rejected).toBe(3);

    await server.start();
    // Another instance publishes as soon as Redis is back, before this reader has reconnected.
    const other = redisBackplane({ url: server.url, stream: 'restart' });
    cleanups.push(() => other.close());
    await other.publish({ topics: ['t'], data: '7' });
    await other.publish({ topics: ['t'], data: '8' });
    // This instance publishes again once its connection is back.
    await waitFor(() => hub.backplane.position !== undefined && errors.length > 0, 'the outage report');
    let published = false;
    while (!published) {
      published = await hub.publish('t', '9').then(
        () => true,
        () => new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 20)),
      );
    }
    await hub.publish('t', '10');
    await waitFor(() => c.events.length >= 11, 'every accepted event');
    await new Promise((resolve) => setTimeout(resolve, 100));

    expect(c.data()).toEqual(range(0, 11));
    expect(c.opens).toBe(1);
    expect(c.errors).toBe(0);
    expect(hub.stats().streams).toBe(1);
    expect(errors).toHaveLength(1);
  });
});
