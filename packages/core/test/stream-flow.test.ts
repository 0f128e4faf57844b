/**
 * Flow control over real sockets: a raw TCP client that stops reading (overflow `close` and `drop`,
 * `sendTimeout`, heartbeats while stalled), slow subscribers next to fast ones, and `pipe()` from every
 * kind of source (order, end, pacing, stopping on disconnect, failing sources).
 */
import type { ServerResponse } from 'node:http';
import net from 'node:net';
import { Readable } from 'node:stream';
import {
  createEventStream,
  type EventStream,
  type EventStreamOptions,
  isSseError,
  KeepaliveScheduler,
  type NodeTransport,
  type OverflowInfo,
  type PipeOptions,
  type Source,
  type SseError,
} from '@ssekit/core';
import { collectEvents, EventStreamParser, type ParsedEvent } from '@ssekit/core/testing';
import { describe, expect, test } from 'vitest';
import { cleanups, serve, sleep, until, watchProcess } from './helpers.js';

/**
 * A raw HTTP/1.1 client on a `net` socket (Nagle off) that can stop reading: until `resume()`, nothing
 * consumes the socket, so the kernel buffers fill and the server's writes stop draining. It de-chunks
 * the body itself and parses it with the spec parser.
 */
class RawClient {
  readonly socket: net.Socket;
  readonly events: ParsedEvent[] = [];
  readonly parser = new EventStreamParser((event) => this.events.push(event));
  status = 0;
  /** The terminating zero-size chunk arrived: the server ended the response. */
  ended = false;
  closed = false;
  #buffer = Buffer.alloc(0);
  #inHead = true;
  #left = -1;

  constructor(port: number, path: string, read = true) {
    this.socket = net.connect(port, '127.0.0.1');
    this.socket.setNoDelay(true);
    this.socket.on('error', () => {});
    this.socket.on('close', () => {
      this.closed = true;
    });
    this.socket.write(`GET ${path} HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n`);
    if (read) this.resume();
    cleanups.push(() => this.socket.destroy());
  }

  resume(): void {
    this.socket.on('data', (chunk: Buffer) => this.#onData(chunk));
  }

  #onData(chunk: Buffer): void {
    let buf = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
    if (this.#inHead) {
      const end = buf.indexOf('\r\n\r\n');
      if (end === -1) {
        this.#buffer = buf;
        return;
      }
      this.status = Number(buf.subarray(0, end).toString('latin1').split(' ')[1]);
      buf = buf.subarray(end + 4);
      this.#inHead = false;
    }
    for (;;) {
      if (this.#left === 0) {
        if (buf.length < 2) break;
        buf = buf.subarray(2);
        this.#left = -1;
      }
      if (this.#left === -1) {
        const nl = buf.indexOf('\r\n');
        if (nl === -1) break;
        const size = Number.parseInt(buf.subarray(0, nl).toString('latin1'), 16);
        buf = buf.subarray(nl + 2);
        if (size === 0) {
          this.ended = true;
          break;
        }
        this.#left = size;
      }
      if (buf.length === 0) break;
      const take = Math.min(this.#left, buf.length);
      this.parser.feed(buf.subarray(0, take));
      buf = buf.subarray(take);
      this.#left -= take;
    }
    this.#buffer = buf;
  }
}

/** Sends `frame`-sized events every turn until `stop()` says so; ids count up from 0. */
function pump(stream: EventStream, data: (i: number) => string, stop: () => boolean, perTurn = 64) {
  const state = { sent: 0, maxQueued: 0 };
  const loop = () => {
    for (let i = 0; i < perTurn; i++) {
      if (!stream.isOpen || stop()) return;
      stream.send(data(state.sent), { id: String(state.sent) });
      state.sent++;
      state.maxQueued = Math.max(state.maxQueued, stream.queuedBytes);
    }
    setImmediate(loop);
  };
  loop();
  return state;
}

const frameLength = (data: string, id: number) => `id: ${id}\ndata: ${data}\n\n`.length;

describe('a client that stops reading', () => {
  test("overflow 'close': the queue stays within highWaterMark, then the stream is destroyed", async () => {
    const hwm = 64 * 1024;
    const infos: OverflowInfo[] = [];
    let stream: EventStream | undefined;
    let state = { sent: 0, maxQueued: 0 };
    const payload = (i: number) => `${i}:${'x'.repeat(1000)}`;
    const { port } = await serve((req, res) => {
      stream = createEventStream(req, res, {
        keepalive: false,
        highWaterMark: hwm,
        onOverflow: (info) => infos.push(info),
      });
      state = pump(stream, payload, () => false);
    });
    const client = new RawClient(port, '/', false);
    await until(() => stream !== undefined && !stream.isOpen, 'the overflow', 20_000);
    const closed = stream as EventStream;
    expect(closed.closedForSlowness).toBe(true);
    expect(isSseError(closed.closeReason, 'ERR_SSE_OVERFLOW')).toBe(true);
    expect(infos).toHaveLength(1);
    expect(infos[0]?.policy).toBe('close');
    expect(infos[0]?.droppedEvents).toBeGreaterThan(0);
    expect(infos[0]?.queuedBytes).toBeGreaterThan(hwm);
    expect(closed.droppedEvents).toBe(infos[0]?.droppedEvents);
    expect(state.maxQueued).toBeLessThanOrEqual(hwm + frameLength(payload(state.sent), state.sent));
    expect(closed.queuedBytes).toBe(0);
    expect(closed.send('late')).toBe(false);

    // The connection is gone: once the client reads, it gets what the socket held, then the close.
    client.resume();
    await until(() => client.closed, 'the client to see the close', 10_000);
    expect(client.ended).toBe(false);
    expect(client.events.length).toBeGreaterThan(0);
    client.events.forEach((event, i) => {
      expect(event.lastEventId).toBe(String(i));
      expect(event.data).toBe(payload(i));
    });
    expect(client.events.length).toBeLessThan(state.sent);
  });

  test("overflow 'drop': whole oldest events go, the stream stays open, the client parses only whole events", async () => {
    const hwm = 16 * 1024;
    const infos: OverflowInfo[] = [];
    let stream: EventStream | undefined;
    let state = { sent: 0, maxQueued: 0 };
    const payload = (i: number) => `${i}:${'y'.repeat(200)}`;
    const { port } = await serve((req, res) => {
      stream = createEventStream(req, res, {
        keepalive: false,
        highWaterMark: hwm,
        overflow: 'drop',
        onOverflow: (info) => infos.push(info),
      });
      state = pump(stream, payload, () => (stream as EventStream).droppedEvents >= 500, 32);
    });
    const client = new RawClient(port, '/', false);
    await until(() => (stream?.droppedEvents ?? 0) >= 500, 'drops', 20_000);
    const open = stream as EventStream;
    expect(open.isOpen).toBe(true);
    expect(open.closedForSlowness).toBe(false);
    expect(state.maxQueued).toBeLessThanOrEqual(hwm + frameLength(payload(state.sent), state.sent));
    expect(open.queuedBytes).toBeLessThanOrEqual(hwm);
    expect(infos.every((info) => info.policy === 'drop')).toBe(true);
    expect(infos.reduce((n, info) => n + info.droppedEvents, 0)).toBe(open.droppedEvents);
    const last = state.sent;
    open.send('the end', { id: String(last), event: 'last' });

    client.resume();
    await until(() => client.events.at(-1)?.type === 'last', 'the last event', 10_000);
    const ids = client.events.map((event) => Number(event.lastEventId));
    for (let i = 1; i < ids.length; i++) expect(ids[i]).toBeGreaterThan(ids[i - 1] as number);
    for (const event of client.events.slice(0, -1)) expect(event.data).toBe(payload(Number(event.lastEventId)));
    // Every event was either delivered whole or counted as dropped.
    expect(client.events.length - 1 + open.droppedEvents).toBe(last);
    expect(ids.some((id, i) => i > 0 && id - (ids[i - 1] as number) > 1)).toBe(true);

    open.close();
    await until(() => client.ended, 'the end of the response');
    expect(client.parser.result.comments).toEqual([]);
  });

  test('sendTimeout closes a stream whose socket has not drained for that long', async () => {
    const scheduler = new KeepaliveScheduler();
    cleanups.push(() => scheduler.stop());
    const infos: OverflowInfo[] = [];
    let stream: EventStream | undefined;
    let stalledAt = 0;
    const { port } = await serve((req, res) => {
      stream = createEventStream(req, res, {
        scheduler,
        keepalive: false,
        highWaterMark: 4 * 1024 * 1024,
        overflow: 'drop',
        sendTimeout: 300,
        onOverflow: (info) => infos.push(info),
      });
      // Keep sending: a socket that drains a little once more (kernel buffers) is not stalled yet, and
      // must be stalled for good before the timeout can fire.
      pump(
        stream,
        () => 'z'.repeat(1000),
        () => {
          if ((stream as EventStream).needsDrain) stalledAt ||= Date.now();
          return false;
        },
        8,
      );
    });
    new RawClient(port, '/', false);
    await until(() => stalledAt > 0, 'the socket to stop draining', 20_000);
    expect(stream?.isOpen).toBe(true);
    await until(() => stream?.isOpen === false, 'the send timeout', 5000);
    expect(Date.now() - stalledAt).toBeGreaterThanOrEqual(290);
    expect(stream?.closedForSlowness).toBe(true);
    expect(isSseError(stream?.closeReason, 'ERR_SSE_SEND_TIMEOUT')).toBe(true);
    // Drops may come first (the sender never stopped); the timeout acts once, and last.
    expect(infos.filter((info) => info.policy === 'timeout')).toHaveLength(1);
    expect(infos.at(-1)?.policy).toBe('timeout');
  });

  test('close() on a stalled client: the connection is dropped after sendTimeout instead of held forever', async () => {
    const scheduler = new KeepaliveScheduler();
    cleanups.push(() => scheduler.stop());
    let stream: EventStream | undefined;
    let response: ServerResponse | undefined;
    const { port } = await serve((req, res) => {
      response = res;
      stream = createEventStream(req, res, {
        scheduler,
        keepalive: false,
        highWaterMark: 16 * 1024,
        overflow: 'drop',
        sendTimeout: 300,
      });
      pump(
        stream,
        () => 'q'.repeat(500),
        () => (stream as EventStream).droppedEvents > 0,
      );
    });
    const client = new RawClient(port, '/', false);
    await until(() => (stream?.droppedEvents ?? 0) > 0, 'drops', 20_000);
    (stream as EventStream).close({ retry: 100 });
    expect(stream?.isOpen).toBe(false);
    // Not dropped at once: a client that is only briefly behind still gets the end of the stream.
    expect(response?.destroyed).toBe(false);
    await until(() => response?.destroyed === true, 'the stalled connection to be dropped', 3000);
    await until(() => scheduler.size === 0, 'the scheduler to forget it');
    client.socket.destroy();
  });

  test('close() on a client that catches up ends the response normally', async () => {
    let stream: EventStream | undefined;
    const { port } = await serve((req, res) => {
      stream = createEventStream(req, res, { keepalive: false, highWaterMark: 16 * 1024, overflow: 'drop' });
      pump(
        stream,
        () => 'k'.repeat(500),
        () => (stream as EventStream).droppedEvents > 0,
      );
    });
    const client = new RawClient(port, '/', false);
    await until(() => (stream?.droppedEvents ?? 0) > 0, 'drops', 20_000);
    (stream as EventStream).close({ retry: 100 });
    client.resume();
    await until(() => client.ended, 'the end of the response');
    expect(client.parser.result.retry).toBe(100);
  });

  test('sendTimeout leaves a stream that reads alone', async () => {
    const scheduler = new KeepaliveScheduler();
    cleanups.push(() => scheduler.stop());
    let stream: EventStream | undefined;
    const { port } = await serve((req, res) => {
      stream = createEventStream(req, res, { scheduler, keepalive: false, sendTimeout: 100 });
      const loop = async () => {
        const big = 'r'.repeat(4000);
        while (stream?.isOpen) {
          for (let i = 0; i < 50; i++) stream.send(big);
          if (!(await stream.ready())) return;
          await sleep(1);
        }
      };
      void loop();
    });
    const client = new RawClient(port, '/');
    await sleep(600);
    expect(stream?.isOpen).toBe(true);
    expect(client.events.length).toBeGreaterThan(500);
  });

  test('heartbeats do not grow the queue (or the socket buffer) of a stalled stream', async () => {
    const scheduler = new KeepaliveScheduler();
    cleanups.push(() => scheduler.stop());
    const streams = new Map<string, EventStream>();
    let stalled = false;
    const options: EventStreamOptions = { scheduler, keepalive: 40, highWaterMark: 1024 * 1024, overflow: 'drop' };
    const { port } = await serve((req, res) => {
      const stream = createEventStream(req, res, options);
      streams.set(req.url as string, stream);
      if (req.url === '/stalled') {
        pump(
          stream,
          () => 'h'.repeat(1000),
          () => {
            stalled ||= stream.needsDrain;
            return stalled;
          },
        );
      }
    });
    new RawClient(port, '/stalled', false);
    await until(() => stalled, 'the stall', 20_000);
    const stream = streams.get('/stalled') as EventStream;
    const socket = (stream.transport as NodeTransport).response.socket as net.Socket;
    const queued = stream.queuedBytes;
    const buffered = socket.writableLength;
    const idle = new RawClient(port, '/idle');
    await until(() => idle.parser.result.comments.length >= 6, 'heartbeats on the idle stream', 3000);
    expect(stream.isOpen).toBe(true);
    expect(stream.queuedBytes).toBe(queued);
    expect(socket.writableLength).toBe(buffered);
  });
});

describe('slow subscribers', () => {
  test('two clients that stop reading never delay fifty that read', async () => {
    const hwm = 32 * 1024;
    const normal: EventStream[] = [];
    const slow: EventStream[] = [];
    const options: EventStreamOptions = { keepalive: false, highWaterMark: hwm, overflow: 'drop' };
    const { port, url } = await serve((req, res) => {
      const stream = createEventStream(req, res, options);
      (req.url === '/slow' ? slow : normal).push(stream);
    });
    const stalled = [new RawClient(port, '/slow', false), new RawClient(port, '/slow', false)];
    await until(() => slow.length === 2, 'the slow streams');
    // Fill the slow sockets first (until their own queue overflows), so that they are truly stalled
    // when the broadcast starts.
    for (const stream of slow)
      pump(
        stream,
        () => 'f'.repeat(1000),
        () => stream.droppedEvents > 0,
      );
    await until(() => slow.every((s) => s.droppedEvents > 0), 'the slow sockets to fill', 20_000);

    const total = 500;
    const readers = Array.from({ length: 50 }, () => collectEvents(`${url}/normal`, { count: total, timeout: 25_000 }));
    await until(() => normal.length === 50, 'fifty streams');
    const heapBefore = process.memoryUsage().heapUsed;
    const payload = (i: number) => `${i}:${'p'.repeat(300)}`;
    const everyone = [...normal, ...slow];
    for (let i = 0; i < total; ) {
      for (let k = 0; k < 20 && i < total; k++, i++) {
        for (const stream of everyone) stream.send(payload(i), { id: String(i) });
      }
      // The producer paces itself to the readers; the stalled two never hold it back.
      await Promise.all(normal.map((stream) => stream.ready()));
      await new Promise((resolve) => setImmediate(resolve));
      for (const stream of slow) expect(stream.queuedBytes).toBeLessThanOrEqual(hwm + payload(i).length + 20);
    }
    const results = await Promise.all(readers);
    for (const result of results) {
      expect(result.events).toHaveLength(total);
      result.events.forEach((event, i) => {
        expect(event.lastEventId).toBe(String(i));
        expect(event.data).toBe(payload(i));
      });
    }
    expect(normal.every((stream) => stream.droppedEvents === 0)).toBe(true);
    for (const stream of slow) {
      expect(stream.isOpen).toBe(true);
      expect(stream.droppedEvents).toBeGreaterThan(0);
      expect(stream.queuedBytes).toBeLessThanOrEqual(hwm);
    }
    // Loose: the slow queues are bounded at 32 KiB each; nothing here should approach 100 MB.
    expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(100 * 1024 * 1024);
    for (const client of stalled) client.socket.destroy();
  });
});

describe('pipe()', () => {
  async function* asyncGen() {
    yield 'a';
    await sleep(1);
    yield { b: 2 };
    yield 'c';
  }
  const customAsync: AsyncIterable<string> = {
    [Symbol.asyncIterator]() {
      let i = 0;
      return {
        next: async () => (i < 3 ? { done: false, value: `v${i++}` } : { done: true, value: undefined }),
      };
    },
  };
  function* syncGen() {
    yield 1;
    yield 2;
    yield 3;
  }
  const sources: [string, () => Source<unknown>, string[]][] = [
    ['an async generator', asyncGen, ['a', '{"b":2}', 'c']],
    ['a custom AsyncIterable', () => customAsync, ['v0', 'v1', 'v2']],
    ['an objectMode Readable', () => Readable.from(['r1', { r: 2 }, 'r3']), ['r1', '{"r":2}', 'r3']],
    [
      'a web ReadableStream',
      () =>
        new ReadableStream({
          start(controller) {
            controller.enqueue('w1');
            controller.enqueue({ w: 2 });
            controller.close();
          },
        }),
      ['w1', '{"w":2}'],
    ],
    ['an array', () => ['x', 'y', 'z'], ['x', 'y', 'z']],
    ['a Set', () => new Set(['s1', 's2']), ['s1', 's2']],
    ['a sync generator', syncGen, ['1', '2', '3']],
  ];
  for (const [name, make, expected] of sources) {
    test(`${name}: each item is an event, in order, and the stream ends with the source`, async () => {
      const piped: Promise<void>[] = [];
      const { url } = await serve((req, res) => {
        const stream = createEventStream(req, res, { keepalive: false });
        piped.push(stream.pipe(make()));
      });
      const result = await collectEvents(url, { timeout: 3000 });
      expect(result.events.map((event) => event.data)).toEqual(expected);
      await expect(piped[0]).resolves.toBeUndefined();
    });
  }

  test('a byte-mode Readable: every chunk becomes an event, bytes in order', async () => {
    const { url } = await serve((req, res) => {
      const stream = createEventStream(req, res, { keepalive: false });
      const chunks = ['alpha', 'beta', 'gamma', 'δέλτα'].map((s) => Buffer.from(s));
      void stream.pipe(
        new Readable({
          read() {
            this.push(chunks.shift() ?? null);
          },
        }),
      );
    });
    const result = await collectEvents(url, { timeout: 3000 });
    // A byte stream may hand over several pushes as one chunk; what matters is bytes and order.
    expect(result.events.length).toBeGreaterThan(0);
    expect(result.events.every((event) => event.data.length > 0)).toBe(true);
    expect(result.events.map((event) => event.data).join('')).toBe('alphabetagammaδέλτα');
  });

  test('map shapes events; end: false keeps the stream open after the source', async () => {
    const { url } = await serve((req, res) => {
      const stream = createEventStream(req, res, { keepalive: false });
      const options: PipeOptions<number> = { map: (n) => ({ event: 'num', id: `n${n}`, data: n * 10 }), end: false };
      void stream.pipe([1, 2], options).then(() => {
        stream.send('after the source');
        stream.close();
      });
    });
    const result = await collectEvents(url, { timeout: 3000 });
    expect(result.events).toEqual([
      { type: 'num', data: '10', lastEventId: 'n1' },
      { type: 'num', data: '20', lastEventId: 'n2' },
      { type: 'message', data: 'after the source', lastEventId: 'n2' },
    ]);
  });

  test('a large synchronous source is paced through a small highWaterMark and fully delivered', async () => {
    // Thousands of items in one turn fill the queue past highWaterMark before the first write; the
    // producer must still be woken once that write is taken, even if no 'drain' ever comes.
    const items = Array.from({ length: 5000 }, (_, i) => `${i}`.padEnd(100, '.'));
    async function* eager() {
      for (const item of items) yield item;
    }
    const { url } = await serve((req, res) => {
      const stream = createEventStream(req, res, { keepalive: false, highWaterMark: 4096 });
      void stream.pipe(req.url === '/async' ? eager() : items);
    });
    for (const path of ['/sync', '/async']) {
      const result = await collectEvents(`${url}${path}`, { timeout: 5000 });
      expect(result.events.map((event) => event.data)).toEqual(items);
    }
  });

  test('pulling is paced: a stalled client stops the generator; disconnect runs its finally', async () => {
    const hwm = 16 * 1024;
    let pulled = 0;
    let finalized = false;
    let stream: EventStream | undefined;
    const item = 'g'.repeat(1000);
    async function* endless() {
      try {
        for (;;) {
          pulled++;
          yield item;
        }
      } finally {
        finalized = true;
      }
    }
    const { port } = await serve((req, res) => {
      stream = createEventStream(req, res, { keepalive: false, highWaterMark: hwm });
      void stream.pipe(endless());
    });
    const client = new RawClient(port, '/', false);
    // Wait until pulling stops: the same count 200 ms apart.
    let last = -1;
    await until(
      () => {
        const settled = pulled === last && pulled > 0;
        last = pulled;
        return settled;
      },
      'pulling to stop',
      20_000,
    );
    await sleep(200);
    expect(pulled).toBe(last);
    const open = stream as EventStream;
    expect(open.isOpen).toBe(true);
    expect(open.needsDrain).toBe(true);
    expect(open.queuedBytes).toBeLessThanOrEqual(hwm + item.length + 10);
    // Pulled no further than what the socket took plus one queue's worth.
    const socket = (open.transport as NodeTransport).response.socket as net.Socket;
    const handed = socket.bytesWritten + socket.writableLength;
    expect(pulled * (item.length + 8)).toBeLessThanOrEqual(handed + hwm + 2 * (item.length + 8));
    expect(finalized).toBe(false);

    client.socket.destroy();
    await until(() => finalized, "the generator's finally", 1000);
  });

  describe('stops the source when the client leaves', () => {
    const stoppable: [string, (stopped: () => void) => Source<unknown>][] = [
      [
        'an async generator (finally runs)',
        (stopped) =>
          (async function* () {
            try {
              for (let i = 0; ; i++) {
                await sleep(5);
                yield i;
              }
            } finally {
              stopped();
            }
          })(),
      ],
      [
        'a sync generator (finally runs)',
        (stopped) =>
          (function* () {
            try {
              for (let i = 0; ; i++) yield i;
            } finally {
              stopped();
            }
          })(),
      ],
      [
        'a Readable that went quiet (destroyed)',
        (stopped) => {
          // Three items, then nothing: only the disconnect can end the pending read.
          const items = [0, 1, 2];
          const readable = new Readable({
            objectMode: true,
            read() {
              if (items.length > 0) this.push(items.shift());
            },
          });
          readable.on('close', () => {
            if (readable.destroyed) stopped();
          });
          return readable;
        },
      ],
      [
        'a web ReadableStream that went quiet (cancelled)',
        (stopped) => {
          let i = 0;
          return new ReadableStream({
            pull(controller) {
              // Three items, then a pull that never settles.
              if (i < 3) controller.enqueue(i++);
              else return new Promise<void>(() => {});
            },
            cancel() {
              stopped();
            },
          });
        },
      ],
    ];
    for (const [name, make] of stoppable) {
      test(name, async () => {
        let stopped = 0;
        const piped: Promise<void>[] = [];
        const reported: unknown[] = [];
        const { url } = await serve((req, res) => {
          // A small queue, so that an endless synchronous source is paced by the socket too.
          const onError = (err: unknown) => reported.push(err);
          const stream = createEventStream(req, res, { keepalive: false, highWaterMark: 4096, onError });
          piped.push(stream.pipe(make(() => stopped++)));
        });
        const controller = new AbortController();
        const response = await fetch(url, { signal: controller.signal });
        const parser = new EventStreamParser();
        const reader = (response.body as ReadableStream<Uint8Array>).getReader();
        while (parser.result.events.length < 3) parser.feed((await reader.read()).value as Uint8Array);
        controller.abort();
        const start = Date.now();
        await until(() => stopped === 1, 'the source to stop', 1000);
        expect(Date.now() - start).toBeLessThan(1000);
        await piped[0];
        await sleep(20);
        expect(stopped).toBe(1);
        // Stopping the source because the client left is not the source failing.
        expect(reported).toEqual([]);
      });
    }
  });

  describe('a failing source ends only its own stream', () => {
    const failing: [string, () => Source<unknown>][] = [
      [
        'an async generator that throws',
        () =>
          (async function* () {
            yield 'one';
            yield 'two';
            throw new Error('boom');
          })(),
      ],
      [
        'a Readable that errors',
        () => {
          const readable = new Readable({ objectMode: true, read() {} });
          readable.push('one');
          readable.push('two');
          setTimeout(() => readable.destroy(new Error('boom')), 20);
          return readable;
        },
      ],
      [
        'a web ReadableStream that errors',
        () => {
          let n = 0;
          return new ReadableStream({
            pull(controller) {
              if (n === 2) controller.error(new Error('boom'));
              else controller.enqueue(n++ === 0 ? 'one' : 'two');
            },
          });
        },
      ],
      [
        'a sync generator that throws',
        () =>
          (function* () {
            yield 'one';
            yield 'two';
            throw new Error('boom');
          })(),
      ],
    ];
    for (const [name, make] of failing) {
      test(name, async () => {
        const processErrors = watchProcess();
        const reported: unknown[] = [];
        let ticker: EventStream | undefined;
        const { url } = await serve((req, res) => {
          const onError = (err: unknown) => reported.push(err);
          const stream = createEventStream(req, res, { keepalive: false, onError });
          if (req.url === '/ticker') {
            ticker = stream;
            void stream.pipe(
              (async function* () {
                for (let i = 0; ; i++) {
                  await sleep(5);
                  yield `tick ${i}`;
                }
              })(),
            );
          } else {
            void stream.pipe(make(), {
              errorEvent: (err) => ({ event: 'error', data: { message: (err as Error).message } }),
            });
          }
        });
        const ticks = new RawClient(Number(new URL(url).port), '/ticker');
        const failed = await collectEvents(`${url}/fail`, { timeout: 3000 });
        expect(failed.events).toEqual([
          { type: 'message', data: 'one', lastEventId: '' },
          { type: 'message', data: 'two', lastEventId: '' },
          { type: 'error', data: '{"message":"boom"}', lastEventId: '' },
        ]);
        expect(reported).toHaveLength(1);
        expect(isSseError(reported[0], 'ERR_SSE_SOURCE')).toBe(true);
        expect(((reported[0] as SseError).cause as Error).message).toBe('boom');
        // The other stream on the same server keeps going.
        const before = ticks.events.length;
        await until(() => ticks.events.length >= before + 5, 'more ticks');
        expect(ticker?.isOpen).toBe(true);
        expect(processErrors).toEqual([]);
      });
    }

    test('without errorEvent the client just sees the end; a bad source is reported, not thrown', async () => {
      const reported: unknown[] = [];
      const { url } = await serve((req, res) => {
        const stream = createEventStream(req, res, { keepalive: false, onError: (err) => reported.push(err) });
        if (req.url === '/bad') void stream.pipe(42 as unknown as Source<unknown>);
        else
          void stream.pipe(
            (async function* () {
              yield 'only';
              throw new Error('quiet');
            })(),
          );
      });
      const quiet = await collectEvents(`${url}/quiet`, { timeout: 3000 });
      expect(quiet.events.map((event) => event.data)).toEqual(['only']);
      const bad = await collectEvents(`${url}/bad`, { timeout: 3000 });
      expect(bad.events).toEqual([]);
      expect(reported).toHaveLength(2);
      expect(reported.every((err) => isSseError(err, 'ERR_SSE_SOURCE'))).toBe(true);
    });
  });
});
