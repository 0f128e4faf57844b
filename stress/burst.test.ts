/**
 * A burst with default options: a hub publishes `count` events of 10 KB in one go to readers that
 * read as fast as one loopback client process can, next to clients that stopped reading. Side by side
 * with a hand-written `res.write()` loop (naive) in the same run:
 * - every reader gets every event, in order, on core, Express and Fastify (a reader that is behind is
 *   a position in the hub's log, never closed while it makes progress);
 * - the stalled clients are closed by the server (reset after `sendTimeout`: no FIN-WAIT-1 socket
 *   keeps their unread data, checked with `ss`); naive never closes them;
 * - the server's memory grows by no more than naive's.
 * Full size (`pnpm test:stress`): 50 readers, 10 stalled, 5,000 events (50 MB), default sendTimeout.
 * Reduced (`pnpm test`): 12 readers, 3 stalled, 600 events, sendTimeout 2 s.
 */
import { execFileSync } from 'node:child_process';
import net from 'node:net';
import { afterAll, describe, expect, test } from 'vitest';
import { until } from '../packages/core/test/support/clients.js';
import { ServerProcess } from './lib/child.js';
import { FULL, size } from './lib/size.js';

const READERS = size(50, 12);
const STALLED = size(10, 3);
const COUNT = size(5000, 600);
const SIZE = 10_000;
// Defaults in the full run; the reduced run only shortens the stall time.
const SEND_TIMEOUT = FULL ? undefined : 2000;
const STALL_WAIT = (SEND_TIMEOUT ?? 30_000) + 15_000;

interface Figures {
  streams: number;
  closedByServer: number;
  rss: number;
  arrayBuffers: number;
  heapUsed: number;
  behind: number;
  bufferedBytes: number;
  cut: number;
}

interface Result {
  variant: string;
  completed: number;
  seconds: number;
  rssGrowthMB: number;
  stalledClosed: number;
  finWait: number;
}

const results: Result[] = [];
afterAll(() => {
  console.log(
    `[burst] ${READERS} readers, ${STALLED} stalled, ${COUNT} × ${SIZE} B\n${JSON.stringify(results, null, 2)}`,
  );
});

/** A client that reads as fast as it can and counts events (`data:` lines; one per event here). */
function reader(port: number): { socket: net.Socket; events: () => number; done: Promise<void> } {
  const socket = net.connect(port, '127.0.0.1');
  let events = 0;
  let carry = '';
  let resolveDone!: () => void;
  const done = new Promise<void>((resolve) => {
    resolveDone = resolve;
  });
  socket.setEncoding('latin1');
  socket.on('error', () => {});
  socket.write('GET /events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n');
  socket.on('data', (chunk: string) => {
    const text = carry + chunk;
    let at = text.indexOf('\ndata: ');
    while (at !== -1) {
      events++;
      at = text.indexOf('\ndata: ', at + 7);
    }
    carry = text.slice(-6);
    if (events >= COUNT) resolveDone();
  });
  return { socket, events: () => events, done };
}

/** A client that sends its request and never reads a byte. */
function stalled(port: number): net.Socket {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => {});
  socket.pause();
  socket.write('GET /events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n');
  return socket;
}

/** Server sockets of `port` in FIN-WAIT-1: closed with unread data still held by the kernel. */
function finWait(port: number): number {
  const out = execFileSync('ss', ['-tnH', 'state', 'fin-wait-1', `( sport = :${port} )`], { encoding: 'utf8' });
  return out.split('\n').filter((line) => line.trim() !== '').length;
}

describe('a burst to fast readers next to stalled clients, default options', () => {
  const run = async (variant: string): Promise<Result> => {
    const args = SEND_TIMEOUT === undefined ? [variant] : [variant, String(SEND_TIMEOUT)];
    const server = await ServerProcess.start<{ port: number }>('burst-server.mjs', args, ['--expose-gc']);
    const sockets: net.Socket[] = [];
    try {
      const { port } = server.ready;
      for (let i = 0; i < STALLED; i++) sockets.push(stalled(port));
      const readers = Array.from({ length: READERS }, () => reader(port));
      for (const r of readers) sockets.push(r.socket);
      await until(
        async () => (await server.request<Figures>('figures')).streams === READERS + STALLED,
        10_000,
        'every stream to open',
      );
      const before = await server.request<Figures>('figures');
      const started = Date.now();
      await server.request('burst', { count: COUNT, size: SIZE });
      await Promise.race([
        Promise.all(readers.map((r) => r.done)),
        new Promise((resolve) => setTimeout(resolve, 120_000)),
      ]);
      const seconds = (Date.now() - started) / 1000;
      const completed = readers.filter((r) => r.events() >= COUNT).length;
      const peak = await server.request<Figures>('figures');
      let after = peak;
      if (variant !== 'naive') {
        await until(
          async () => {
            after = await server.request<Figures>('figures');
            return after.closedByServer >= STALLED;
          },
          STALL_WAIT,
          'the stalled clients to be closed by the server',
        );
      }
      const result: Result = {
        variant,
        completed,
        seconds,
        rssGrowthMB: Math.round((Math.max(peak.rss, after.rss) - before.rss) / 1e5) / 10,
        stalledClosed: after.closedByServer,
        finWait: finWait(port),
      };
      results.push(result);
      return result;
    } finally {
      for (const socket of sockets) socket.destroy();
      await server.close();
    }
  };

  let naive: Result | undefined;
  test('naive node:http (a res.write() loop): the floor', { timeout: 180_000 }, async () => {
    naive = await run('naive');
    expect(naive.completed).toBe(READERS);
  });

  for (const variant of ['core', 'express', 'fastify']) {
    test(`ssekit ${variant}: every reader gets every event; stalled clients are reset; memory ≤ naive`, {
      timeout: 240_000,
    }, async () => {
      const result = await run(variant);
      expect(result.completed).toBe(READERS);
      expect(result.stalledClosed).toBeGreaterThanOrEqual(STALLED);
      expect(result.finWait).toBe(0);
      if (naive !== undefined) expect(result.rssGrowthMB).toBeLessThanOrEqual(Math.max(naive.rssGrowthMB, 20));
    });
  }
});
