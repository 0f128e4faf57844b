/**
 * Issue 8.1 — churn without leaks. Thousands of clients connect to an Express app and a Fastify app
 * (each with a hub that is published to every 5 ms throughout, and a streaming-source route) and
 * leave in every way a real client does: a clean close (fetch abort, `EventSource.close()`), a TCP
 * reset while the server is writing, a drop during a large replay, a drop while a generator is piped.
 * Afterwards nothing may remain: no open stream, no scheduler entry, no hub subscription, no socket,
 * every generator's `finally` ran, no MaxListenersExceededWarning, and the server's heap after a
 * forced GC is within 5 % of its baseline.
 *
 * The server runs in a child process (`stress/lib/churn-server.mjs`, built packages, `--expose-gc`);
 * the load comes from this process over loopback.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { collectEvents } from '@ssekit/core/testing';
import { EventSource } from 'eventsource';
import { expect, test } from 'vitest';
import { ensureBuilt } from '../scripts/ensure-built.js';
import { ServerProcess } from './lib/child.js';
import { pool, RawRequest, within } from './lib/raw-http.js';
import { FULL, size } from './lib/size.js';

/** Connect/disconnect cycles per app (Express and Fastify each). */
const CYCLES = size(10_000, 1_000);
/**
 * Cycles per app before the heap baseline. V8 goes on compiling and optimising the hot paths for the
 * first ~2,000 cycles (code space and its metadata in old space grow by ~0.8 MB, then stay flat — seen
 * in heap snapshot diffs: only code objects differ); the baseline is taken once that has settled.
 */
const WARMUP = size(2_000, 1_000);
const CONCURRENCY = 16;
/** Messages each hub keeps for replay (every one on topic 'a', ~350 bytes framed). */
const HISTORY = 2000;
/** A replaying client resumes this many messages after the oldest held, so that eviction (one message
 * per 5 ms) cannot turn its replay into a gap before the server reads its request. */
const REPLAY_MARGIN = 200;
/** Heap after the churn may exceed the baseline by at most this fraction. */
const HEAP_TOLERANCE = 0.05;

type App = 'express' | 'fastify';
type Ids = Record<App, { oldest: string; far: string }>;

interface Counts {
  allStreams: number;
  scheduler: number;
  groups: { expressHub: number; expressPipe: number };
  hubs: Record<
    App,
    {
      streams: number;
      topics: Record<string, number>;
      replays: number;
      gaps: number;
      frames: number;
      published: number;
      group: number;
    }
  >;
  sockets: Record<App, number>;
  generators: { started: number; finished: number };
  closes: Record<App, Record<string, number>>;
  socketErrors: Record<App, Record<string, number>>;
  errors: Record<string, number>;
  warnings: string[];
}

interface Heap {
  heapUsed: number;
  heapTotal: number;
  rss: number;
  external: number;
  /** Compiled code (part of heapUsed). */
  code: number;
}

/** The ways a client leaves, in the order the cycles rotate through them. */
const KINDS = [
  'clean-fetch-abort',
  'clean-eventsource-close',
  'reset-live-burst',
  'reset-during-replay',
  'drop-after-request-replay',
  'drop-at-head-replay',
  'close-during-pipe',
  'reset-during-pipe',
] as const;
type Kind = (typeof KINDS)[number];

const decoder = new TextDecoder();

function expect200(request: RawRequest, kind: Kind): void {
  if (request.head !== undefined && request.head.status !== 200) {
    throw new Error(`${kind}: status ${request.head.status}`);
  }
}

/**
 * One connect/disconnect cycle of `kind` against the app on `port`. Each client it opens registers
 * how to drop it in `teardown`, for a cycle that does not finish in time.
 */
async function cycle(kind: Kind, port: number, ids: { far: string }, teardown: (() => void)[]): Promise<void> {
  const base = `http://127.0.0.1:${port}`;
  const raw = (path: string, headers?: Record<string, string>): RawRequest => {
    const request = new RawRequest(port, path, headers);
    teardown.push(() => request.socket.destroy());
    return request;
  };
  switch (kind) {
    case 'clean-fetch-abort': {
      const controller = new AbortController();
      teardown.push(() => controller.abort());
      try {
        const res = await fetch(`${base}/hub?t=a,b`, {
          headers: { accept: 'text/event-stream' },
          signal: controller.signal,
        });
        if (res.status !== 200 || res.body === null) throw new Error(`${kind}: status ${res.status}`);
        const reader = res.body.getReader();
        let text = '';
        while (!/(^|\n)data: /.test(text)) {
          const { value, done } = await reader.read();
          if (done) throw new Error(`${kind}: the stream ended before an event`);
          text += decoder.decode(value, { stream: true });
        }
      } finally {
        controller.abort();
      }
      return;
    }
    case 'clean-eventsource-close': {
      const source = new EventSource(`${base}/hub?t=a`);
      teardown.push(() => source.close());
      try {
        await new Promise<void>((resolve, reject) => {
          source.onmessage = () => resolve();
          source.onerror = (event) => reject(new Error(`${kind}: ${event.message ?? 'error'}`));
        });
      } finally {
        source.close();
      }
      return;
    }
    case 'reset-live-burst': {
      const request = raw('/hub?t=a,b');
      // An event (~350 bytes) arrived, then the client stops reading while the publisher goes on
      // writing, and resets.
      await request.waitBody(300);
      expect200(request, kind);
      request.socket.pause();
      await sleep(15);
      await request.reset();
      return;
    }
    case 'reset-during-replay': {
      // The replay of ~1,800 events (~650 KB) cannot fit in the socket buffers: the server is mid-write.
      const request = raw('/hub?t=a', { 'Last-Event-ID': ids.far });
      await request.waitBody(1);
      expect200(request, kind);
      request.socket.pause();
      await request.reset();
      return;
    }
    case 'drop-after-request-replay': {
      const request = raw('/hub?t=a', { 'Last-Event-ID': ids.far });
      await request.sent;
      await request.destroy();
      return;
    }
    case 'drop-at-head-replay': {
      const request = raw('/hub?t=a', { 'Last-Event-ID': ids.far });
      await request.waitHead();
      expect200(request, kind);
      await request.destroy();
      return;
    }
    case 'close-during-pipe':
    case 'reset-during-pipe': {
      const request = raw('/pipe');
      if (!(await request.waitBody(300))) throw new Error(`${kind}: closed before the source produced`);
      expect200(request, kind);
      await (kind === 'reset-during-pipe' ? request.reset() : request.destroy());
      return;
    }
  }
}

interface ChurnResult {
  cycles: Record<App, number>;
  byKind: Record<string, number>;
  failures: string[];
  /** The most seen open at once while the clients came and went (sampled every 100 ms). */
  peak: { streams: number; scheduler: number; subscriptions: number; generators: number };
}

/** Runs `perApp` cycles against each app, `CONCURRENCY` at a time, kinds and apps interleaved. */
async function churn(server: ServerProcess<Record<App, number>>, perApp: number): Promise<ChurnResult> {
  const result: ChurnResult = {
    cycles: { express: 0, fastify: 0 },
    byKind: {},
    failures: [],
    peak: { streams: 0, scheduler: 0, subscriptions: 0, generators: 0 },
  };
  let ids = await server.request<Ids>('ids', REPLAY_MARGIN);
  let running = true;
  // A replaying client needs an id that is still held: refresh it as the publisher moves on. The same
  // loop samples the open counts, which shows that what must return to zero was not zero meanwhile.
  const sampler = (async () => {
    while (running) {
      await sleep(100);
      if (!running) break;
      const [fresh, counts] = await Promise.all([
        server.request<Ids>('ids', REPLAY_MARGIN),
        server.request<Counts>('counts'),
      ]);
      ids = fresh;
      const peak = result.peak;
      peak.streams = Math.max(peak.streams, counts.allStreams);
      peak.scheduler = Math.max(peak.scheduler, counts.scheduler);
      peak.subscriptions = Math.max(peak.subscriptions, counts.hubs.express.streams + counts.hubs.fastify.streams);
      peak.generators = Math.max(peak.generators, counts.generators.started - counts.generators.finished);
    }
  })();
  try {
    await pool(perApp * 2, CONCURRENCY, async (i) => {
      const app: App = i % 2 === 0 ? 'express' : 'fastify';
      const kind = KINDS[Math.floor(i / 2) % KINDS.length] as Kind;
      const teardown: (() => void)[] = [];
      try {
        await within(cycle(kind, server.ready[app], ids[app], teardown), 10_000, `${app} ${kind}`, () => {
          for (const drop of teardown) drop();
        });
        result.cycles[app]++;
        result.byKind[kind] = (result.byKind[kind] ?? 0) + 1;
      } catch (error) {
        if (result.failures.length < 20) result.failures.push(`${app} #${i}: ${(error as Error).message}`);
      }
    });
  } finally {
    running = false;
    await sampler;
  }
  return result;
}

/**
 * Waits until every figure that must return to zero has (or the time is up), and returns them.
 * With `sockets`, the servers' open sockets too: that takes ~4 s after fetch/EventSource clients,
 * because undici (Node's fetch) opens a spare connection after an aborted request and closes it only
 * at its 4 s keep-alive timeout. The streams themselves are gone at once.
 */
async function settle(server: ServerProcess, sockets: boolean, timeout = 15_000): Promise<Counts> {
  const deadline = Date.now() + timeout;
  for (;;) {
    const counts = await server.request<Counts>('counts');
    const quiet =
      counts.allStreams === 0 &&
      counts.scheduler === 0 &&
      counts.hubs.express.streams === 0 &&
      counts.hubs.fastify.streams === 0 &&
      counts.generators.started === counts.generators.finished &&
      (!sockets || (counts.sockets.express === 0 && counts.sockets.fastify === 0));
    if (quiet || Date.now() > deadline) return counts;
    await sleep(50);
  }
}

/**
 * Heap after forced GCs, in the same state each time: publishing paused, and every history message
 * framed (the hub caches a message's frame the first time a subscriber or a replay needs it, so a
 * full replay of topic 'a' — every message is on it — leaves the whole history framed). The replay
 * also proves each hub still resumes exactly: HISTORY - 1 events after the oldest id, no gap.
 */
async function measureHeap(server: ServerProcess<Record<App, number>>): Promise<Heap> {
  await server.request('publishing', false);
  const ids = await server.request<Ids>('ids', 0);
  for (const app of ['express', 'fastify'] as const) {
    const { status, events } = await collectEvents(`http://127.0.0.1:${server.ready[app]}/hub?t=a`, {
      lastEventId: ids[app].oldest,
      count: HISTORY - 1,
      timeout: 20_000,
    });
    expect(status).toBe(200);
    expect(events.filter((event) => event.type !== 'message')).toEqual([]);
    expect(events.length).toBe(HISTORY - 1);
  }
  const counts = await settle(server, false);
  expect(counts.allStreams).toBe(0);
  const heap = await server.request<Heap>('heap');
  await server.request('publishing', true);
  return heap;
}

const mb = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(2)} MB`;

test(
  `churn: ${CYCLES} connect/disconnect cycles per app (Express and Fastify, hub + pipe) leave no stream, timer entry, subscription, socket or heap growth`,
  async () => {
    ensureBuilt(['core', 'express', 'fastify']);
    const warnings: string[] = [];
    const onWarning = (warning: Error): void => {
      warnings.push(`${warning.name}: ${warning.message}`);
    };
    process.on('warning', onWarning);
    const server = await ServerProcess.start<Record<App, number>>(
      'churn-server.mjs',
      [String(HISTORY)],
      ['--expose-gc'],
    );
    try {
      const warm = await churn(server, WARMUP);
      expect(warm.failures).toEqual([]);
      const before = await server.request<Counts>('counts');
      const baseline = await measureHeap(server);

      const started = performance.now();
      const run = await churn(server, CYCLES);
      const seconds = (performance.now() - started) / 1000;

      const after = await measureHeap(server);
      const counts = await settle(server, true);
      const growth = (after.heapUsed - baseline.heapUsed) / baseline.heapUsed;

      const figures = {
        mode: FULL ? 'full' : 'reduced',
        cycles: run.cycles,
        byKind: run.byKind,
        warmupCyclesPerApp: WARMUP,
        concurrency: CONCURRENCY,
        seconds: Number(seconds.toFixed(1)),
        cyclesPerSecond: Math.round((run.cycles.express + run.cycles.fastify) / seconds),
        heap: {
          baseline: mb(baseline.heapUsed),
          after: mb(after.heapUsed),
          growth: `${(growth * 100).toFixed(2)} %`,
          codeSpace: `${mb(baseline.code)} → ${mb(after.code)}`,
          rssAfter: mb(after.rss),
        },
        peakWhileChurning: run.peak,
        openStreams: counts.allStreams,
        groups: {
          ...counts.groups,
          expressHubGroup: counts.hubs.express.group,
          fastifyHubGroup: counts.hubs.fastify.group,
        },
        schedulerSize: counts.scheduler,
        subscriptions: {
          express: { streams: counts.hubs.express.streams, topics: counts.hubs.express.topics },
          fastify: { streams: counts.hubs.fastify.streams, topics: counts.hubs.fastify.topics },
        },
        replays: {
          express: counts.hubs.express.replays - before.hubs.express.replays,
          fastify: counts.hubs.fastify.replays - before.hubs.fastify.replays,
        },
        gaps: { express: counts.hubs.express.gaps, fastify: counts.hubs.fastify.gaps },
        openSockets: counts.sockets,
        generators: counts.generators,
        streamsClosed: counts.closes,
        serverSocketErrors: counts.socketErrors,
        adapterErrors: counts.errors,
        warnings: { server: counts.warnings, client: warnings },
      };
      console.log(`[stress] churn figures\n${JSON.stringify(figures, null, 2)}`);

      expect(run.failures).toEqual([]);
      expect(run.cycles).toEqual({ express: CYCLES, fastify: CYCLES });
      // What is checked for zero below was really in use while the clients came and went.
      expect(run.peak.streams).toBeGreaterThan(0);
      expect(run.peak.scheduler).toBeGreaterThan(0);
      expect(run.peak.subscriptions).toBeGreaterThan(0);
      // Nothing left open anywhere.
      expect(counts.allStreams).toBe(0);
      expect(counts.groups).toEqual({ expressHub: 0, expressPipe: 0 });
      expect(counts.hubs.express.group).toBe(0);
      expect(counts.hubs.fastify.group).toBe(0);
      expect(counts.scheduler).toBe(0);
      expect(counts.hubs.express.streams).toBe(0);
      expect(counts.hubs.fastify.streams).toBe(0);
      expect(counts.hubs.express.topics).toEqual({});
      expect(counts.hubs.fastify.topics).toEqual({});
      expect(counts.sockets).toEqual({ express: 0, fastify: 0 });
      // Every piped generator was stopped: its finally ran. Each pipe cycle saw the generator produce.
      const pipeCycles = (run.byKind['close-during-pipe'] ?? 0) + (run.byKind['reset-during-pipe'] ?? 0);
      expect(counts.generators.started).toBeGreaterThanOrEqual(pipeCycles);
      expect(counts.generators.finished).toBe(counts.generators.started);
      // The replays really ran, resets reached the servers as resets, and streams were cut off while
      // the server was mid-write (socket not drained).
      for (const app of ['express', 'fastify'] as const) {
        expect(figures.replays[app]).toBeGreaterThan(0);
        expect(counts.socketErrors[app].ECONNRESET ?? 0).toBeGreaterThan(0);
        expect(counts.closes[app].backlogged ?? 0).toBeGreaterThan(0);
      }
      // A client leaving is not an error.
      expect(counts.errors).toEqual({});
      const maxListeners = (list: string[]): string[] => list.filter((w) => w.startsWith('MaxListenersExceeded'));
      expect(maxListeners(counts.warnings)).toEqual([]);
      expect(maxListeners(warnings)).toEqual([]);
      expect(after.heapUsed).toBeLessThanOrEqual(baseline.heapUsed * (1 + HEAP_TOLERANCE));
    } catch (error) {
      console.log(`[stress] churn server output:\n${server.output}`);
      throw error;
    } finally {
      process.off('warning', onWarning);
      await server.close();
    }
  },
  size(1_200_000, 120_000),
);
