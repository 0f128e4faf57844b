/**
 * The keepalive scheduler over the wire: one timer for every stream, heartbeats only for idle streams,
 * streams leave it when their client goes, `keepalive: false` never joins, `stop()` stops it, and its
 * timer never keeps a process alive.
 */
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { type ClientRequest, createServer, get, type IncomingMessage, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createEventStream,
  defaultScheduler,
  type EventStream,
  type EventStreamOptions,
  KeepaliveScheduler,
  type NodeTransport,
} from '@ssekit/core';
import { EventStreamParser } from '@ssekit/core/testing';
import { EventSource } from 'eventsource';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { cleanups, listen, sleep, until } from './helpers.js';

/** A server whose every request opens a stream with `options`; the streams are collected in order. */
async function sseServer(options: (req: IncomingMessage) => EventStreamOptions) {
  const streams: EventStream[] = [];
  const server: Server = createServer((req, res) => {
    streams.push(createEventStream(req, res, options(req)));
  });
  const { port } = await listen(server);
  return { server, streams, port, url: (path = '/') => `http://127.0.0.1:${port}${path}` };
}

interface RawClient {
  req: ClientRequest;
  parser: EventStreamParser;
  /** Heartbeats and other comments seen so far. */
  readonly comments: number;
  close(): void;
}

/** A plain node:http client on its own connection, parsing what arrives. */
async function openRaw(port: number, path = '/'): Promise<RawClient> {
  const parser = new EventStreamParser();
  const req = get({ host: '127.0.0.1', port, path, agent: false, headers: { accept: 'text/event-stream' } });
  const [res] = (await once(req, 'response')) as [IncomingMessage];
  expect(res.statusCode).toBe(200);
  res.on('data', (chunk: Buffer) => parser.feed(chunk));
  res.on('error', () => {});
  req.on('error', () => {});
  const client: RawClient = {
    req,
    parser,
    get comments() {
      return parser.result.comments.length;
    },
    close: () => req.destroy(),
  };
  cleanups.push(() => client.close());
  return client;
}

/**
 * Counts the timers our sources create while `fn` runs: every global `setInterval`/`setTimeout` call
 * whose stack passes through packages/core/src. (Node's own http internals don't use the globals.)
 */
async function countCoreTimers(fn: () => Promise<void>): Promise<{ intervals: number; timeouts: number }> {
  const counts = { intervals: 0, timeouts: 0 };
  const realInterval = globalThis.setInterval;
  const realTimeout = globalThis.setTimeout;
  const fromCore = (): boolean => (new Error().stack ?? '').includes('/packages/core/src/');
  globalThis.setInterval = ((...args: Parameters<typeof setInterval>) => {
    if (fromCore()) counts.intervals++;
    return realInterval(...args);
  }) as typeof setInterval;
  globalThis.setTimeout = ((...args: Parameters<typeof setTimeout>) => {
    if (fromCore()) counts.timeouts++;
    return realTimeout(...args);
  }) as typeof setTimeout;
  try {
    await fn();
  } finally {
    globalThis.setInterval = realInterval;
    globalThis.setTimeout = realTimeout;
  }
  return counts;
}

const activeTimeouts = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

describe('KeepaliveScheduler over the wire', () => {
  it('drives 50 streams from ONE timer (the process-wide default scheduler)', async () => {
    const { port, streams } = await sseServer(() => ({ keepalive: 100 }));
    expect(defaultScheduler.size).toBe(0);
    const before = activeTimeouts();
    const clients: RawClient[] = [];
    const created = await countCoreTimers(async () => {
      for (let i = 0; i < 50; i++) clients.push(await openRaw(port));
      // Every one of them gets heartbeats, from that one timer.
      await until(() => clients.every((c) => c.comments >= 2), 'two heartbeats on each of the 50 streams');
    });
    expect(streams).toHaveLength(50);
    expect(defaultScheduler.size).toBe(50);
    expect(created).toEqual({ intervals: 1, timeouts: 0 });
    // Nor did anything else start a timer per connection.
    expect(activeTimeouts() - before).toBeLessThan(5);
    expect(defaultScheduler.period).toBe(25);
    // A heartbeat is a bare comment line, and nothing else arrived.
    expect(clients.every((c) => c.parser.result.comments.every((text) => text === ''))).toBe(true);
    expect(clients.every((c) => c.parser.result.events.length === 0)).toBe(true);

    for (const client of clients) client.close();
    await until(() => defaultScheduler.size === 0, 'every stream to leave the scheduler', 1000);
    expect(streams.every((s) => !s.isOpen)).toBe(true);
    // With no member left, the timer is disarmed.
    expect(defaultScheduler.period).toBe(Number.POSITIVE_INFINITY);
  });

  it('sends heartbeats only to idle streams', async () => {
    const scheduler = new KeepaliveScheduler();
    cleanups.push(() => scheduler.stop());
    const { port, streams } = await sseServer(() => ({ keepalive: 500, scheduler }));
    const busy = await openRaw(port, '/busy');
    const idle = await openRaw(port, '/idle');
    await until(() => streams.length === 2, 'both streams');
    const busyStream = streams.find((s) => (s.transport as NodeTransport).request.url === '/busy') as EventStream;
    // A write every interval/3 keeps the busy stream from ever being idle for the interval.
    let sent = 0;
    const sender = setInterval(() => busyStream.send(++sent), 150);
    cleanups.push(() => clearInterval(sender));
    await sleep(1600);
    clearInterval(sender);
    await until(() => busy.parser.result.events.length === sent, 'every busy event');
    expect(sent).toBeGreaterThanOrEqual(8);
    expect(busy.comments).toBe(0);
    expect(idle.comments).toBeGreaterThanOrEqual(2);
    expect(idle.parser.result.events).toEqual([]);
    expect(scheduler.size).toBe(2);
  });

  it('drops a stream when its client (the eventsource package) disconnects', async () => {
    const scheduler = new KeepaliveScheduler();
    cleanups.push(() => scheduler.stop());
    const { url, streams } = await sseServer(() => ({ keepalive: 100, scheduler }));
    const es = new EventSource(url('/'));
    cleanups.push(() => es.close());
    await once(es as unknown as EventTarget, 'open');
    await until(() => scheduler.size === 1, 'the stream to join');
    expect(scheduler.has(streams[0] as EventStream)).toBe(true);
    es.close();
    await until(() => scheduler.size === 0, 'the stream to leave', 1000);
    expect(scheduler.has(streams[0] as EventStream)).toBe(false);
    expect(streams[0]?.isOpen).toBe(false);
    expect(scheduler.period).toBe(Number.POSITIVE_INFINITY);
  });

  it('drops a stream the server closes', async () => {
    const scheduler = new KeepaliveScheduler();
    cleanups.push(() => scheduler.stop());
    const { port, streams } = await sseServer(() => ({ keepalive: 100, scheduler }));
    await openRaw(port);
    await openRaw(port);
    await until(() => scheduler.size === 2, 'both streams to join');
    streams[0]?.close();
    expect(scheduler.size).toBe(1);
    expect(scheduler.has(streams[1] as EventStream)).toBe(true);
  });

  it('never lets a `keepalive: false` stream join', async () => {
    const scheduler = new KeepaliveScheduler();
    cleanups.push(() => scheduler.stop());
    const { port, streams } = await sseServer((req) => ({
      keepalive: req.url === '/off' ? false : 100,
      scheduler,
    }));
    const off = await openRaw(port, '/off');
    await until(() => streams.length === 1, 'the stream');
    expect(scheduler.size).toBe(0);
    expect(scheduler.has(streams[0] as EventStream)).toBe(false);
    // A control stream on the same scheduler shows heartbeats were due meanwhile.
    const on = await openRaw(port, '/on');
    await until(() => on.comments >= 3, 'three heartbeats on the control stream');
    expect(scheduler.size).toBe(1);
    expect(off.comments).toBe(0);
    expect(streams[0]?.isOpen).toBe(true);
  });

  it('stops heartbeats on stop(), keeps the streams open, and restarts when a stream joins', async () => {
    const scheduler = new KeepaliveScheduler();
    cleanups.push(() => scheduler.stop());
    const { port, streams } = await sseServer(() => ({ keepalive: 100, scheduler }));
    const first = await openRaw(port);
    await until(() => first.comments >= 1, 'a first heartbeat');
    scheduler.stop();
    expect(scheduler.size).toBe(0);
    expect(scheduler.period).toBe(Number.POSITIVE_INFINITY);
    const seen = first.comments;
    await sleep(500);
    expect(first.comments).toBe(seen);
    expect(streams[0]?.send('still open')).toBe(true);
    await until(() => first.parser.result.events.length === 1, 'the event after stop()');

    const second = await openRaw(port);
    expect(scheduler.size).toBe(1);
    await until(() => second.comments >= 2, 'heartbeats after the restart');
    // The stream forgotten by stop() stays without heartbeats.
    expect(first.comments).toBe(seen);
  });
});

describe('KeepaliveScheduler timer', () => {
  it('is unref’d: a process holding only an armed scheduler exits by itself', async () => {
    // Run the current source (not a stale build): keepalive.ts has no imports, so transpiling it alone
    // gives a module a plain `node` child can load.
    const dir = await mkdtemp(join(tmpdir(), 'ssekit-keepalive-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    // keepalive.ts and the one module it imports.
    for (const name of ['keepalive', 'runtime']) {
      const source = await readFile(new URL(`../src/${name}.ts`, import.meta.url), 'utf8');
      const { outputText } = ts.transpileModule(source, {
        compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
      });
      await writeFile(join(dir, `${name}.mjs`), outputText.replaceAll("'./runtime.js'", "'./runtime.mjs'"));
    }
    await writeFile(
      join(dir, 'child.mjs'),
      `import { KeepaliveScheduler } from './keepalive.mjs';
const scheduler = new KeepaliveScheduler();
let ticks = 0;
scheduler.add({ tick() { ticks++; } }, 10);
// A ref'd timer keeps the process up long enough to see the scheduler tick; after it, only the
// scheduler's timer is left, and it must not hold the process.
setTimeout(() => console.log(JSON.stringify({ ticks, size: scheduler.size, period: scheduler.period })), 200);
`,
    );
    const child = execFile(process.execPath, [join(dir, 'child.mjs')], { timeout: 10_000 });
    let stdout = '';
    child.stdout?.on('data', (chunk) => {
      stdout += chunk;
    });
    const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
    expect(signal).toBeNull();
    expect(code).toBe(0);
    const report = JSON.parse(stdout) as { ticks: number; size: number; period: number };
    // The scheduler was armed and ticking, and still held its member, when the process left.
    expect(report.ticks).toBeGreaterThan(3);
    expect(report).toMatchObject({ size: 1, period: 10 });
  });
});
