import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createEventStream, createHub, type EventStream, type Hub, SseError } from '@ssekit/core';
import { collectEvents, EventStreamParser, type ParsedEvent } from '@ssekit/core/testing';
import { EventSource } from 'eventsource';
import { afterEach, describe, expect, test } from 'vitest';

// A node:http server whose streams subscribe to the topics named in `?topics=a,b`.
interface Served {
  hub: Hub;
  url: string;
  streams: Set<EventStream>;
  close(): Promise<void>;
}

const servers: Served[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function serve(hub: Hub = createHub()): Promise<Served> {
  const streams = new Set<EventStream>();
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const topics = (url.searchParams.get('topics') ?? 'a').split(',');
    const stream = createEventStream(req, res, { keepalive: false });
    streams.add(stream);
    stream.onClose(() => streams.delete(stream));
    void hub.subscribe(stream, topics);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const served: Served = {
    hub,
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    streams,
    async close() {
      await hub.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  servers.push(served);
  return served;
}

// A lightweight client (node:http + the spec parser): cheap enough to open a thousand of.
interface Client {
  events: ParsedEvent[];
  opened: Promise<void>;
  waitFor(count: number, timeout?: number): Promise<ParsedEvent[]>;
  close(): void;
}

function connect(url: string, headers: Record<string, string> = {}): Client {
  const events: ParsedEvent[] = [];
  const waiters: (() => void)[] = [];
  const parser = new EventStreamParser((event) => {
    events.push(event);
    for (const wake of waiters.splice(0)) wake();
  });
  let request: http.ClientRequest;
  const opened = new Promise<void>((resolve, reject) => {
    request = http.get(url, { agent: false, headers: { accept: 'text/event-stream', ...headers } }, (res) => {
      res.on('data', (chunk: Buffer) => parser.feed(chunk));
      res.on('error', () => {});
      resolve();
    });
    request.on('error', reject);
  });
  return {
    events,
    opened,
    async waitFor(count, timeout = 5000) {
      const deadline = Date.now() + timeout;
      while (events.length < count) {
        if (Date.now() > deadline) throw new Error(`got ${events.length} of ${count} events`);
        await new Promise<void>((resolve) => {
          waiters.push(resolve);
          setTimeout(resolve, 50);
        });
      }
      return events;
    },
    close() {
      request.destroy();
    },
  };
}

async function until(condition: () => boolean, timeout = 3000): Promise<void> {
  const deadline = Date.now() + timeout;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const datas = (events: ParsedEvent[]) => events.map((e) => JSON.parse(e.data));

describe('fan-out', () => {
  test('1000 subscribers all receive every event, in order', async () => {
    const { hub, url, streams } = await serve();
    const clients = Array.from({ length: 1000 }, () => connect(`${url}/?topics=a`));
    await Promise.all(clients.map((c) => c.opened));
    await until(() => hub.stats().streams === 1000);
    for (let i = 0; i < 50; i++) await hub.publish('a', { i });
    await Promise.all(clients.map((c) => c.waitFor(50, 15_000)));
    const expected = Array.from({ length: 50 }, (_, i) => ({ i }));
    for (const client of clients) expect(datas(client.events)).toEqual(expected);
    expect(streams.size).toBe(1000);
    for (const client of clients) client.close();
    await until(() => hub.stats().streams === 0, 5000);
  });

  test('each published event is serialized once, whatever the subscriber count', async () => {
    let calls = 0;
    const hub = createHub({
      serialize: (value) => {
        calls++;
        return JSON.stringify(value);
      },
    });
    const { url } = await serve(hub);
    const clients = Array.from({ length: 20 }, () => connect(`${url}/?topics=a,b`));
    await Promise.all(clients.map((c) => c.opened));
    await until(() => hub.stats().streams === 20);
    await hub.publish('a', { n: 1 });
    await hub.publish(['a', 'b'], { n: 2 });
    await Promise.all(clients.map((c) => c.waitFor(2)));
    expect(calls).toBe(2);
    for (const c of clients) c.close();
  });

  test('a stream on two topics gets an event published to both once', async () => {
    const { hub, url } = await serve();
    const both = connect(`${url}/?topics=a,b`);
    await both.opened;
    await until(() => hub.stats().streams === 1);
    await hub.publish(['a', 'b'], 'to both');
    await hub.publish('b', 'to b');
    await both.waitFor(2);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(both.events.map((e) => e.data)).toEqual(['to both', 'to b']);
    both.close();
  });

  test('topics are isolated', async () => {
    const { hub, url } = await serve();
    const a = connect(`${url}/?topics=a`);
    const b = connect(`${url}/?topics=b`);
    await Promise.all([a.opened, b.opened]);
    await until(() => hub.stats().streams === 2);
    await hub.publish('a', 'for a');
    await hub.publish('b', 'for b');
    await Promise.all([a.waitFor(1), b.waitFor(1)]);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(a.events.map((e) => e.data)).toEqual(['for a']);
    expect(b.events.map((e) => e.data)).toEqual(['for b']);
    a.close();
    b.close();
  });

  test('a per-subscriber filter sees each message and only passes what it accepts', async () => {
    const hub = createHub();
    const server = http.createServer((req, res) => {
      const stream = createEventStream(req, res, { keepalive: false });
      const user = new URL(req.url ?? '/', 'http://x').searchParams.get('user');
      void hub.subscribe(stream, 'dm', { filter: (m) => JSON.parse(m.data).to === user });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const ann = connect(`${base}/?user=ann`);
    const bob = connect(`${base}/?user=bob`);
    await Promise.all([ann.opened, bob.opened]);
    await until(() => hub.stats().streams === 2);
    await hub.publish('dm', { to: 'ann', text: 1 });
    await hub.publish('dm', { to: 'bob', text: 2 });
    await hub.publish('dm', { to: 'ann', text: 3 });
    await ann.waitFor(2);
    await bob.waitFor(1);
    expect(datas(ann.events).map((d) => d.text)).toEqual([1, 3]);
    expect(datas(bob.events).map((d) => d.text)).toEqual([2]);
    ann.close();
    bob.close();
    await hub.close();
    server.closeAllConnections();
    server.close();
  });

  test('subscription counts return to 0 after clients leave, and stats add up', async () => {
    const { hub, url } = await serve();
    const clients = [connect(`${url}/?topics=a`), connect(`${url}/?topics=a,b`), connect(`${url}/?topics=b`)];
    await Promise.all(clients.map((c) => c.opened));
    await until(() => hub.stats().streams === 3);
    expect(hub.stats().topics).toEqual({ a: 2, b: 2 });
    await hub.publish('a', 'x');
    await hub.publish('b', 'y');
    await Promise.all([clients[0]!.waitFor(1), clients[1]!.waitFor(2), clients[2]!.waitFor(1)]);
    const stats = hub.stats();
    expect(stats.published).toBe(2);
    expect(stats.delivered).toBe(2);
    // a → 2 streams, b → 2 streams.
    expect(stats.frames).toBe(4);
    expect(stats.bytes).toBeGreaterThan(0);
    for (const c of clients) c.close();
    await until(() => hub.stats().streams === 0);
    expect(hub.stats().topics).toEqual({});
  });
});

describe('resume', () => {
  test('a new client is given the current position, so a reconnect before any event misses nothing', async () => {
    const { hub, url } = await serve();
    await hub.publish('a', 'before');
    const first = new EventSource(`${url}/?topics=a`);
    await new Promise((resolve) => first.addEventListener('open', resolve));
    await until(() => hub.stats().streams === 1);
    // The id-only frame sets the client's last event id without dispatching an event.
    const raw = await collectEvents(`${url}/?topics=a`, { timeout: 300 }).catch((e) => e);
    expect(raw.events).toEqual([]);
    first.close();
    await until(() => hub.stats().streams === 0);
    const position = hub.backplane.position;
    await hub.publish('a', 'while away');
    const back = await collectEvents(`${url}/?topics=a`, { count: 1, lastEventId: position });
    expect(back.events.map((e) => e.data)).toEqual(['while away']);
  });

  test('an eventsource client killed mid-stream and reconnected with its Last-Event-ID gets exactly the missed events', async () => {
    const { hub, url } = await serve();
    const received: string[] = [];
    let lastId = '';
    const es = new EventSource(`${url}/?topics=a`);
    es.addEventListener('message', (e) => {
      received.push(e.data);
      lastId = e.lastEventId;
    });
    await new Promise((resolve) => es.addEventListener('open', resolve));
    await until(() => hub.stats().streams === 1);
    for (let i = 0; i < 5; i++) await hub.publish('a', `e${i}`);
    await until(() => received.length === 5);
    es.close();
    await until(() => hub.stats().streams === 0);
    for (let i = 5; i < 10; i++) await hub.publish('a', `e${i}`);
    const back = new EventSource(`${url}/?topics=a`, {
      fetch: (input, init) => fetch(input, { ...init, headers: { ...init?.headers, 'last-event-id': lastId } }),
    });
    back.addEventListener('message', (e) => received.push(e.data));
    await until(() => received.length === 10);
    await hub.publish('a', 'e10');
    await until(() => received.length === 11);
    expect(received).toEqual(Array.from({ length: 11 }, (_, i) => `e${i}`));
    back.close();
  });

  test('the lastEventId query parameter resumes too (polyfills that cannot set headers)', async () => {
    const { hub, url } = await serve();
    const id = await hub.publish('a', 'one');
    await hub.publish('a', 'two');
    const back = await collectEvents(`${url}/?topics=a&lastEventId=${encodeURIComponent(id)}`, { count: 1 });
    expect(back.events.map((e) => e.data)).toEqual(['two']);
  });

  test('no loss and no duplicate when publishes continue during the replay (repeated)', async () => {
    const { hub, url } = await serve(createHub({ history: { size: 10_000 } }));
    const ids: string[] = [];
    let publishing = true;
    let n = 0;
    const publisher = (async () => {
      while (publishing) {
        ids.push(await hub.publish('a', n++));
        // Yield to the event loop every few publishes so clients connect in between.
        if (n % 5 === 0) await new Promise((resolve) => setImmediate(resolve));
      }
    })();
    for (let round = 0; round < 30; round++) {
      await until(() => ids.length > round * 20 + 10);
      const from = ids.length - 1 - (round % 7);
      const after = ids[from]!;
      const start = Number(after.split('-')[1]);
      const client = connect(`${url}/?topics=a`, { 'last-event-id': after });
      await client.waitFor(30);
      client.close();
      const got = client.events.map((e) => Number(e.data));
      // Exactly the events after the resume point, contiguous, in order, none twice.
      expect(got).toEqual(Array.from({ length: got.length }, (_, i) => start + i));
    }
    publishing = false;
    await publisher;
  });

  test('gap event when history was evicted by size, then live events continue', async () => {
    const { hub, url } = await serve(createHub({ history: { size: 3 } }));
    const first = await hub.publish('a', 0);
    for (let i = 1; i < 6; i++) await hub.publish('a', i);
    const client = connect(`${url}/?topics=a`, { 'last-event-id': first });
    const [gap] = await client.waitFor(1);
    expect(gap!.type).toBe('ssekit-gap');
    const data = JSON.parse(gap!.data);
    expect(data.lastEventId).toBe(first);
    expect(data.oldestId).toMatch(/-4$/);
    // The gap event moves the client's last event id to now.
    expect(gap!.lastEventId).toBe(hub.backplane.position);
    await hub.publish('a', 'live');
    await client.waitFor(2);
    expect(client.events[1]!.data).toBe('live');
    client.close();
  });

  test('gap event when history was evicted by age', async () => {
    const { hub, url } = await serve(createHub({ history: { size: 100, ttl: 100 } }));
    const first = await hub.publish('a', 0);
    await hub.publish('a', 1);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const res = await collectEvents(`${url}/?topics=a`, { count: 1, lastEventId: first });
    expect(res.events[0]!.type).toBe('ssekit-gap');
  });

  test('a client of topic A is not told of a gap because topic B traffic evicted history', async () => {
    const { hub, url } = await serve(createHub({ history: { size: 3 } }));
    const a1 = await hub.publish('a', 'a1');
    for (let i = 0; i < 5; i++) await hub.publish('b', `b${i}`);
    await hub.publish('a', 'a2');
    const res = await collectEvents(`${url}/?topics=a`, { count: 1, lastEventId: a1 });
    expect(res.events.map((e) => [e.type, e.data])).toEqual([['message', 'a2']]);
  });

  test('an unknown or foreign id gives the gap event (custom name); nothing else breaks', async () => {
    const { hub, url } = await serve(createHub({ gapEvent: 'resync' }));
    await hub.publish('a', 'x');
    for (const bad of ['nonsense', '0-1', `${hub.backplane.position}0`]) {
      const res = await collectEvents(`${url}/?topics=a`, { count: 1, lastEventId: bad });
      expect(res.events[0]!.type).toBe('resync');
      expect(JSON.parse(res.events[0]!.data).lastEventId).toBe(bad);
    }
  });

  test('caller-given ids are kept and resumable', async () => {
    const { hub, url } = await serve();
    expect(await hub.publish('a', 'one', { id: 'order-1' })).toBe('order-1');
    await hub.publish('a', 'two', { id: 'order-2', event: 'order' });
    const res = await collectEvents(`${url}/?topics=a`, { count: 1, lastEventId: 'order-1' });
    expect(res.events).toEqual([{ type: 'order', data: 'two', lastEventId: 'order-2' }]);
  });
});

describe('errors', () => {
  test('createHub() rejects an unknown option, naming the closest known one', () => {
    expect(() => createHub({ hisotry: { size: 5 } } as never)).toThrow(
      "createHub(): unknown option 'hisotry' — did you mean 'history'?",
    );
    expect(() => createHub({ history: { sise: 5 } } as never)).toThrow(/unknown option 'sise' — did you mean 'size'/);
    expect(() => createHub({ gapEvent: 'a\nb' })).toThrow(expect.objectContaining({ code: 'ERR_SSE_INVALID_FIELD' }));
  });

  test('publish(bytes) puts the same data on the wire as send(bytes): its UTF-8 text', async () => {
    const { hub, url, streams } = await serve();
    const client = connect(`${url}/?topics=a`);
    await client.opened;
    await until(() => hub.stats().streams === 1);
    const bytes = new TextEncoder().encode('héllo\nwörld');
    await hub.publish('a', bytes);
    [...streams][0]?.send(bytes);
    const [published, sent] = await client.waitFor(2);
    expect(published?.data).toBe('héllo\nwörld');
    expect(sent?.data).toBe(published?.data);
    client.close();
  });

  test('bad topics, event names, ids and data are rejected with SseError codes', async () => {
    const hub = createHub();
    await expect(hub.publish('', 'x')).rejects.toMatchObject({ code: 'ERR_SSE_INVALID_TOPIC' });
    await expect(hub.publish([], 'x')).rejects.toMatchObject({ code: 'ERR_SSE_INVALID_TOPIC' });
    await expect(hub.publish('a', 'x', { event: 'a\nb' })).rejects.toMatchObject({ code: 'ERR_SSE_INVALID_FIELD' });
    await expect(hub.publish('a', 'x', { id: 'a\0' })).rejects.toBeInstanceOf(SseError);
    await expect(hub.publish('a', undefined)).rejects.toMatchObject({ code: 'ERR_SSE_NO_DATA' });
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    await expect(hub.publish('a', cyclic)).rejects.toMatchObject({ code: 'ERR_SSE_SERIALIZE' });
    expect(hub.stats().published).toBe(0);
    await hub.close();
    await expect(hub.publish('a', 'x')).rejects.toMatchObject({ code: 'ERR_SSE_CLOSED' });
  });

  test('a throwing filter only hides the message from that subscriber and is reported', async () => {
    const reported: unknown[] = [];
    const hub = createHub({ onError: (e) => reported.push(e) });
    const server = http.createServer((req, res) => {
      const stream = createEventStream(req, res, { keepalive: false });
      const bad = req.url?.includes('bad');
      void hub.subscribe(stream, 'a', {
        filter: () => {
          if (bad) throw new Error('boom');
          return true;
        },
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const good = connect(`${base}/good`);
    const bad = connect(`${base}/bad`);
    await Promise.all([good.opened, bad.opened]);
    await until(() => hub.stats().streams === 2);
    await hub.publish('a', 'x');
    await good.waitFor(1);
    expect(bad.events).toEqual([]);
    expect(reported).toHaveLength(1);
    good.close();
    bad.close();
    await hub.close();
    server.closeAllConnections();
    server.close();
  });

  test('hub.close() ends every stream; clients see the end and the retry hint', async () => {
    const { hub, url } = await serve();
    const res = collectEvents(`${url}/?topics=a`, { timeout: 3000 });
    await until(() => hub.stats().streams === 1);
    await hub.close({ retry: 2500 });
    const done = await res;
    expect(done.retry).toBe(2500);
    expect(hub.stats().streams).toBe(0);
  });
});
