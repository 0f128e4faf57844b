/**
 * `@ssekit/web` on real runtimes: the same fixture (fixtures/app.ts) is bundled and served by Node (Hono
 * on @hono/node-server), Bun (`Bun.serve`), Deno (`Deno.serve`) and workerd, and each is driven over the
 * wire with the `eventsource` client and raw sockets. No mocks: what a runtime does on a client leaving
 * or not reading is exactly what is under test.
 *
 * What differs on workerd (measured; see docs/runtimes/workers.md):
 * - a client leaving is only noticed when something is written (the body's cancel(), and
 *   `request.signal` with the `enable_request_signal` flag), so disconnect tests there use a short
 *   `keepalive`, which bounds the time to notice;
 * - a plain worker's requests do not share timers: what a request deferred is dropped once it has
 *   answered, and a cancelled request's pending timers never fire (the fixture passes `waitUntil`).
 *   Hub fan-out is tested on a plain worker (one isolate) and with the app inside one Durable Object,
 *   where all requests share the object's context (what production needs);
 * - there is no memory API (process.memoryUsage() answers zeros).
 *
 * Memory is judged on live memory (JS heap + buffers) after a forced full GC (Bun.gc, --expose-gc):
 * RSS only says what the allocator kept, and is printed for information.
 */
import { connect, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { EventStreamParser, type ParsedEvent } from '@ssekit/core/testing';
import { EventSource } from 'eventsource';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Stats } from './fixtures/app.js';
import { type RunningRuntime, type RuntimeName, removeBundles, startRuntime, unavailable } from './support/runtimes.js';

const APP = fileURLToPath(new URL('./fixtures/app.ts', import.meta.url));

/** One runtime setup, and what it can be held to. */
interface RuntimeCase {
  name: string;
  runtime: RuntimeName;
  /** workerd: run the app inside one Durable Object that every request is forwarded to. */
  durableObject?: boolean;
  /** Query added to stream URLs: on workerd, a heartbeat is what makes a departure visible. */
  streamQuery: string;
  /** Hub fan-out across requests works (a publish in one request reaches streams of others). */
  hub: boolean;
  /** The runtime reports its memory. */
  memory: boolean;
}

const CASES: RuntimeCase[] = [
  { name: 'node-hono', runtime: 'node-hono', streamQuery: '', hub: true, memory: true },
  { name: 'bun', runtime: 'bun', streamQuery: '', hub: true, memory: true },
  { name: 'deno', runtime: 'deno', streamQuery: '', hub: true, memory: true },
  // A plain worker: each request has its own I/O context and timers; ssekit flushes in a microtask
  // there, so a publish in one request reaches the streams of others in the same isolate.
  {
    name: 'workerd',
    runtime: 'workerd',
    streamQuery: '?keepalive=250',
    hub: true,
    memory: false,
  },
  // The same app inside one Durable Object: every request shares the object's context.
  {
    name: 'workerd (Durable Object)',
    runtime: 'workerd',
    durableObject: true,
    streamQuery: '?keepalive=250',
    hub: true,
    memory: false,
  },
];

/** How soon a departure must be noticed and its resources freed. */
const NOTICE_WITHIN = 1000;

const MB = 1024 * 1024;

// Sockets, EventSources and readers opened by the current test, closed after it whatever happened.
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) {
    try {
      await cleanup();
    } catch {
      // Best effort: the next test must still run.
    }
  }
});

afterAll(async () => {
  await removeBundles();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `probe` until it returns a value `accept` takes; resolves to that value and the wait in ms. */
async function until<T>(
  probe: () => Promise<T>,
  accept: (value: T) => boolean,
  what: string,
  timeout = 5000,
): Promise<{ value: T; waited: number }> {
  const start = Date.now();
  let last: T | undefined;
  for (;;) {
    last = await probe();
    if (accept(last)) return { value: last, waited: Date.now() - start };
    if (Date.now() - start > timeout)
      throw new Error(`timed out after ${timeout} ms waiting for ${what}; last: ${JSON.stringify(last)}`);
    await sleep(10);
  }
}

async function getJson<T>(url: string): Promise<T> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
  if (!res.ok) throw new Error(`${url}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

/** An `eventsource` client that records what it receives. */
function openEventSource(url: string, headers: Record<string, string> = {}) {
  const events: ParsedEvent[] = [];
  const es = new EventSource(url, {
    fetch: (input, init) => fetch(input, { ...init, headers: { ...init.headers, ...headers } }),
  });
  const record = (type: string) => (e: MessageEvent) => {
    events.push({ type, data: String(e.data), lastEventId: e.lastEventId });
  };
  es.onmessage = record('message');
  for (const type of ['greeting', 'tick']) es.addEventListener(type, record(type));
  const opened = new Promise<void>((resolve, reject) => {
    es.onopen = () => resolve();
    es.onerror = (e) => {
      if (es.readyState === EventSource.CLOSED) reject(new Error(`EventSource ${url} failed: ${String(e.message)}`));
    };
  });
  cleanups.push(() => es.close());
  const wait = async (count: number, timeout = 5000): Promise<ParsedEvent[]> => {
    const start = Date.now();
    while (events.length < count) {
      if (Date.now() - start > timeout)
        throw new Error(`EventSource ${url}: ${events.length} of ${count} events after ${timeout} ms`);
      await sleep(5);
    }
    return events.slice(0, count);
  };
  return { es, events, opened, wait };
}

/**
 * Reads an event stream with `fetch` until `done(events)` holds or the stream ends; then disconnects.
 * Resolves to what arrived and whether the server ended the stream.
 */
async function readStream(
  url: string,
  options: { headers?: Record<string, string>; done?: (events: ParsedEvent[]) => boolean; timeout?: number } = {},
) {
  const controller = new AbortController();
  cleanups.push(() => controller.abort());
  const timer = setTimeout(() => controller.abort(new Error('timeout')), options.timeout ?? 5000);
  const parser = new EventStreamParser();
  let ended = false;
  try {
    const res = await fetch(url, {
      headers: { accept: 'text/event-stream', ...options.headers },
      signal: controller.signal,
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    for (;;) {
      if (options.done?.(parser.result.events)) break;
      const step = await reader.read();
      if (step.done) {
        ended = true;
        break;
      }
      parser.feed(step.value);
    }
  } catch (error) {
    if (controller.signal.aborted) {
      throw new Error(`${url}: timed out with ${JSON.stringify(parser.result.events.map((e) => e.data))}`);
    }
    throw error;
  } finally {
    clearTimeout(timer);
    controller.abort();
  }
  return { ...parser.result, ended };
}

/** A raw TCP client that sent a GET and resolves once the response head (and first bytes) arrived. */
async function rawGet(url: string, path: string): Promise<{ socket: Socket; received: () => string }> {
  const { hostname, port } = new URL(url);
  const socket = connect(Number(port), hostname);
  cleanups.push(() => socket.destroy());
  let text = '';
  const onData = (chunk: Buffer) => {
    text += chunk.toString('latin1');
  };
  socket.on('data', onData);
  socket.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => {
      socket.write(`GET ${path} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nAccept: text/event-stream\r\n\r\n`);
    });
    socket.once('error', reject);
    const check = () => {
      if (text.includes('\r\n\r\n')) {
        socket.off('data', check);
        resolve();
      }
    };
    socket.on('data', check);
  });
  expect(text).toMatch(/^HTTP\/1\.1 200/);
  return { socket, received: () => text };
}

describe.each(CASES)('$name', (traits) => {
  const { runtime } = traits;
  const skip = unavailable(runtime);
  let server: RunningRuntime;
  const stats = () => getJson<Stats>(`${server.url}/stats`);
  const q = traits.streamQuery;
  const withQuery = (path: string, more: string) => `${path}${q ? `${q}&` : '?'}${more}`;
  /**
   * The stats once no hub stream is left: every test closes its clients, but on workerd one closed in
   * the previous test's cleanup is only noticed at its next heartbeat.
   */
  const idle = async () => (await until(stats, (s) => s.streams === 0, 'the streams of earlier tests to go')).value;
  let tags = 0;
  /** A stream URL with a tag of its own, and a check that its cleanup of `kind` ran. */
  const tagged = (path: string) => {
    const tag = `${path.replace(/\W/g, '')}-${++tags}`;
    return {
      url: `${server.url}${withQuery(path, `tag=${tag}`)}`,
      path: withQuery(path, `tag=${tag}`),
      finished: (kind: keyof Stats['finished']) => (s: Stats) => s.finished[kind].includes(tag),
    };
  };
  /** Publishes `batches` × 20 events of 100 kB (2 MB per batch). */
  const publishMegabytes = async (batches: number) => {
    for (let batch = 0; batch < batches; batch++) {
      await getJson(`${server.url}/publish?n=20&pad=100000&from=${batch * 20}`);
    }
  };

  beforeAll(async () => {
    if (skip) return;
    server = await startRuntime(runtime, APP, { durableObject: traits.durableObject });
  });

  afterAll(async () => {
    await server?.stop();
  });

  // Any test failure shows what the runtime printed.
  beforeEach((context) => {
    context.onTestFailed(() => {
      if (server && !context.task.fails)
        console.error(`--- ${traits.name} output ---\n${server.output().slice(-4000)}`);
    });
  });

  it.skipIf(skip !== undefined)('is served by that runtime', async () => {
    const served = await getJson<{ name: string; version: string }>(`${server.url}/runtime`);
    expect(served.name).toBe(runtime === 'node-hono' ? 'node' : runtime);
  });

  describe.skipIf(skip !== undefined || !traits.hub)('hub', () => {
    it('delivers published events to an EventSource client, in order, with their ids', async () => {
      const before = await idle();
      const client = openEventSource(`${server.url}/hub${q}`);
      await client.opened;
      await until(stats, (s) => s.streams === before.streams + 1, 'the subscription');
      const { ids } = await getJson<{ ids: string[] }>(`${server.url}/publish?n=5&from=1`);
      const events = await client.wait(5);
      expect(events.map((e) => e.data)).toEqual(['e1', 'e2', 'e3', 'e4', 'e5']);
      expect(events.map((e) => e.lastEventId)).toEqual(ids);
      expect(new Set(ids).size).toBe(5);
    });

    it('frees the subscription of an EventSource that closes, without a publish', async () => {
      const before = await idle();
      const client = openEventSource(`${server.url}/hub${q}`);
      await client.opened;
      await until(stats, (s) => s.streams === before.streams + 1, 'the subscription');
      client.es.close();
      const { waited } = await until(stats, (s) => s.streams === before.streams, 'the subscription to go');
      expect(waited).toBeLessThan(NOTICE_WITHIN);
    });

    it('frees the subscription of a client whose socket is destroyed, without a publish', async () => {
      const before = await idle();
      const { socket } = await rawGet(server.url, `/hub${q}`);
      await until(stats, (s) => s.streams === before.streams + 1, 'the subscription');
      socket.destroy();
      const { waited } = await until(stats, (s) => s.streams === before.streams, 'the subscription to go');
      expect(waited).toBeLessThan(NOTICE_WITHIN);
    });

    it('resumes after Last-Event-ID with exactly the missed events', async () => {
      const before = await idle();
      const first = openEventSource(`${server.url}/hub${q}`);
      await first.opened;
      await until(stats, (s) => s.streams === before.streams + 1, 'the subscription');
      await getJson(`${server.url}/publish?n=3&from=101`);
      const seen = await first.wait(3);
      expect(seen.map((e) => e.data)).toEqual(['e101', 'e102', 'e103']);
      first.es.close();
      await until(stats, (s) => s.streams === before.streams, 'the first client to go');

      const missed = await getJson<{ ids: string[] }>(`${server.url}/publish?n=4&from=104`);
      const back = openEventSource(`${server.url}/hub${q}`, { 'Last-Event-ID': seen[2]?.lastEventId ?? '' });
      await back.opened;
      await until(stats, (s) => s.streams === before.streams + 1, 'the resumed subscription');
      const live = await getJson<{ ids: string[] }>(`${server.url}/publish?n=1&from=108`);
      const events = await back.wait(5);
      await sleep(50); // nothing more may come: no duplicate, no replay of what the client had
      expect(back.events.map((e) => e.data)).toEqual(['e104', 'e105', 'e106', 'e107', 'e108']);
      expect(events.map((e) => e.lastEventId)).toEqual([...missed.ids, ...live.ids]);
    });

    it('resumes after Last-Event-ID for a plain fetch reader too', async () => {
      const { ids } = await getJson<{ ids: string[] }>(`${server.url}/publish?n=3&from=201`);
      const read = await readStream(`${server.url}/hub${q}`, {
        headers: { 'last-event-id': ids[0] as string },
        done: (events) => events.length >= 2,
      });
      expect(read.events.map((e) => e.data)).toEqual(['e202', 'e203']);
    });
  });

  describe.skipIf(skip !== undefined)('source', () => {
    it('streams the source to an EventSource client', async () => {
      const stream = tagged('/source');
      const client = openEventSource(stream.url);
      await client.opened;
      const events = await client.wait(3);
      expect(events.map((e) => e.data)).toEqual(['0', '1', '2']);
      expect(stream.finished('sourceReturned')(await stats())).toBe(false);
    });

    it('runs the source finally within 1 s of an EventSource closing', async () => {
      const stream = tagged('/source');
      const client = openEventSource(stream.url);
      await client.opened;
      await client.wait(2);
      client.es.close();
      const { waited } = await until(stats, stream.finished('sourceReturned'), 'the finally', 2000);
      expect(waited).toBeLessThan(NOTICE_WITHIN);
    });

    it('runs the source finally within 1 s of the socket being destroyed', async () => {
      const stream = tagged('/source');
      const { socket, received } = await rawGet(server.url, stream.path);
      await until(
        async () => received(),
        (text) => text.includes('data: 1'),
        'two events',
      );
      socket.destroy();
      const { waited } = await until(stats, stream.finished('sourceReturned'), 'the finally', 2000);
      expect(waited).toBeLessThan(NOTICE_WITHIN);
    });
  });

  describe.skipIf(skip !== undefined)('handler', () => {
    it('sends events with type and id, and notices the client leaving (onClose, stream.signal)', async () => {
      const stream = tagged('/handler');
      const client = openEventSource(stream.url);
      await client.opened;
      const events = await client.wait(3);
      expect(events[0]).toEqual({ type: 'greeting', data: 'hello', lastEventId: 'h1' });
      expect(events.slice(1).map((e) => [e.type, e.data])).toEqual([
        ['tick', '0'],
        ['tick', '1'],
      ]);
      client.es.close();
      const { waited } = await until(
        stats,
        (s) => stream.finished('handlerClosed')(s) && stream.finished('handlerAborted')(s),
        'onClose and stream.signal',
      );
      expect(waited).toBeLessThan(NOTICE_WITHIN);
    });

    it('notices a destroyed socket (onClose, stream.signal)', async () => {
      const stream = tagged('/handler');
      const { socket, received } = await rawGet(server.url, stream.path);
      await until(
        async () => received(),
        (text) => text.includes('data: 1'),
        'two ticks',
      );
      socket.destroy();
      const { waited } = await until(
        stats,
        (s) => stream.finished('handlerClosed')(s) && stream.finished('handlerAborted')(s),
        'onClose and stream.signal',
      );
      expect(waited).toBeLessThan(NOTICE_WITHIN);
    });

    it('writes the comment on the wire', async () => {
      const read = await readStream(`${server.url}/handler${q}`, { done: (events) => events.length >= 1 });
      expect(read.comments).toContain('handler mode');
    });

    it('ends the response when the handler pipes a finite source', async () => {
      const read = await readStream(`${server.url}/handler?pipe=1`, { timeout: 3000 });
      expect(read.ended).toBe(true);
      expect(read.events.map((e) => e.data)).toEqual(['hello', 'a', 'b', 'c']);
    });

    it('ends the response on stream.close()', async () => {
      const read = await readStream(`${server.url}/handler?close=1`, { timeout: 3000 });
      expect(read.ended).toBe(true);
      expect(read.events).toEqual([{ type: 'greeting', data: 'hello', lastEventId: 'h1' }]);
    });
  });

  describe.skipIf(skip !== undefined || !traits.hub)('a client that stops reading', () => {
    it('is cut past the hub budget (8 MB) and its subscription freed while 20 MB are published', async () => {
      await publishMegabytes(5); // warm up: history full, code paths compiled
      await idle();
      const before = traits.memory ? await getJson<Stats>(`${server.url}/gc`) : await stats();
      const { socket } = await rawGet(server.url, `/hub${q}`);
      socket.pause(); // the kernel buffers fill, then the hub has a subscriber that is behind
      await until(stats, (s) => s.streams === before.streams + 1, 'the subscription');
      await publishMegabytes(10);
      const { value: after } = await until(
        stats,
        (s) => s.streams === before.streams,
        'the stream of the client that does not read to be cut',
      );
      expect(after.cut).toBe(before.cut + 1);
      expect(after.bufferedBytes).toBe(0);
      socket.destroy();
      if (!traits.memory) return;
      const collected = await getJson<Stats>(`${server.url}/gc`);
      expect(collected.collected).toBe(true);
      console.log(
        `${traits.name} cut: live ${mb(before.live)} -> ${mb(collected.live)} MB, ` +
          `rss ${mb(before.rss)} -> ${mb(collected.rss)} MB after 20 MB published to a client that does not read`,
      );
      expect((collected.live as number) - (before.live as number)).toBeLessThan(8 * MB);
    });

    it.skipIf(!traits.memory)(
      'while under the budget it stays open, a position in the log, memory bounded',
      async () => {
        await publishMegabytes(5);
        await idle();
        const warm = await getJson<Stats>(`${server.url}/gc`);
        expect(warm.collected).toBe(true);
        const { socket } = await rawGet(server.url, `/hub${q}`);
        socket.pause();
        await until(stats, (s) => s.streams === warm.streams + 1, 'the subscription');
        await publishMegabytes(3); // 6 MB: past the socket buffers, under the hub's 8 MB budget
        const after = await getJson<Stats>(`${server.url}/gc`);
        console.log(
          `${traits.name} behind: live ${mb(warm.live)} -> ${mb(after.live)} MB, rss ${mb(warm.rss)} -> ${mb(after.rss)} MB, ` +
            `log ${mb(after.bufferedBytes)} MB`,
        );
        expect(after.streams).toBe(warm.streams + 1); // still open: behind is not stalled
        expect(after.behind).toBe(1);
        expect(after.bufferedBytes).toBeLessThanOrEqual(8 * MB);
        expect((after.live as number) - (warm.live as number)).toBeLessThan(16 * MB);
        socket.destroy();
        await until(stats, (s) => s.streams === warm.streams, 'the subscription to go');
      },
    );
  });

  // Deno.serve() prints a warning for every request whose signal is listened to: ssekit takes the
  // body's cancel() there instead, so a log of many streams stays quiet.
  it.skipIf(runtime !== 'deno' || skip !== undefined)('Deno prints no request.signal warning for the streams', () => {
    expect(server.output()).not.toMatch(/request\.signal/);
  });

  // Bun.serve() ends a response that sent nothing for its idleTimeout (10 s by default); the harness
  // leaves it at the default, as an app would.
  it.skipIf(runtime !== 'bun' || skip !== undefined)(
    "keeps an idle stream open past Bun.serve()'s default 10 s idleTimeout",
    async () => {
      await idle();
      const late = setTimeout(() => void getJson(`${server.url}/publish?n=1&from=700`).catch(() => {}), 11_500);
      try {
        const read = await readStream(`${server.url}/hub`, { done: (events) => events.length >= 1, timeout: 14_000 });
        expect(read.ended).toBe(false);
        expect(read.events.map((e) => e.data)).toEqual(['e700']);
        expect(read.comments.length).toBeGreaterThan(0); // the heartbeats that kept it open
      } finally {
        clearTimeout(late);
      }
    },
    20_000,
  );

  // Last: on a plain worker, a failure here leaves the isolate unable to stream.
  describe.skipIf(skip !== undefined)('isolation', () => {
    it('streams of later requests still flow after a hub.publish() in another request', async () => {
      await getJson(`${server.url}/publish?n=1&from=900`);
      const read = await readStream(`${server.url}/source${q}`, {
        done: (events) => events.length >= 2,
        timeout: 3000,
      });
      expect(read.events.map((e) => e.data)).toEqual(['0', '1']);
    });
  });
});

function mb(bytes: number | null): string {
  return bytes === null ? '?' : (bytes / MB).toFixed(1);
}
