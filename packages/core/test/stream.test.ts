/**
 * The event stream over the wire, HTTP/1.1: headers, Last-Event-ID, disconnects, writes after close,
 * coalescing, heartbeats, shutdown, refusal, limits and option checks. Real `node:http` servers on
 * ephemeral ports; real clients (`eventsource`, `fetch`, raw `net` sockets).
 * HTTP/2 lives in stream-http2.test.ts, backpressure and `pipe()` in stream-flow.test.ts.
 */
import type { ServerResponse } from 'node:http';
import net from 'node:net';
import {
  createEventStream,
  type EventStream,
  type EventStreamOptions,
  isSseError,
  refuse,
  SseError,
  StreamGroup,
} from '@ssekit/core';
import { EventStreamParser } from '@ssekit/core/testing';
import { EventSource } from 'eventsource';
import { describe, expect, test } from 'vitest';
import { cleanups, type Handler, scheduler, serve, sleep, until, watchProcess } from './helpers.js';

/** A fetch client that parses the body as it arrives. */
async function open(url: string, headers: Record<string, string> = {}) {
  const controller = new AbortController();
  const response = await fetch(url, { headers, signal: controller.signal });
  let text = '';
  let ended = false;
  const events: { type: string; data: string; lastEventId: string }[] = [];
  const parser = new EventStreamParser((event) => events.push(event));
  const done = (async () => {
    try {
      const decoder = new TextDecoder();
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
        text += decoder.decode(chunk, { stream: true });
        parser.feed(chunk);
      }
      ended = true;
    } catch {
      // aborted by the test
    }
  })();
  cleanups.push(() => controller.abort());
  return {
    response,
    events,
    parsed: parser.result,
    get text() {
      return text;
    },
    get ended() {
      return ended;
    },
    done,
    abort: () => controller.abort(),
  };
}

/** A raw TCP client: sends `request` as bytes and reads the response head. */
function rawRequest(port: number, request: Buffer | string) {
  const socket = net.connect(port, '127.0.0.1');
  socket.setNoDelay(true);
  socket.on('error', () => {});
  cleanups.push(() => socket.destroy());
  let buffer = Buffer.alloc(0);
  const head = new Promise<{ status: number; headers: Record<string, string>; raw: string }>((resolve, reject) => {
    socket.on('data', (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      const end = buffer.indexOf('\r\n\r\n');
      if (end === -1) return;
      const raw = buffer.subarray(0, end).toString('latin1');
      const [statusLine, ...lines] = raw.split('\r\n');
      const headers: Record<string, string> = {};
      for (const line of lines) {
        const colon = line.indexOf(':');
        headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
      }
      resolve({ status: Number(statusLine?.split(' ')[1]), headers, raw });
    });
    socket.on('close', () => reject(new Error('closed before the response head')));
  });
  socket.write(request);
  /** Everything received so far after the head (chunked framing included). */
  const body = () => {
    const end = buffer.indexOf('\r\n\r\n');
    return end === -1 ? '' : buffer.subarray(end + 4).toString();
  };
  return { socket, head, body };
}

describe('opening a stream on HTTP/1.1', () => {
  test('writes 200 and the SSE headers at once, keeps headers the app set, adds option headers', async () => {
    const s = scheduler();
    const opened: EventStream[] = [];
    const { port, url } = await serve((req, res) => {
      res.setHeader('Access-Control-Allow-Origin', 'https://app.example');
      res.setHeader('Set-Cookie', ['a=1', 'b=2']);
      opened.push(createEventStream(req, res, { scheduler: s, headers: { 'X-Trace': 'abc' } }));
      // Nothing is sent: the client must still get the response now.
    });

    // Raw bytes: the exact head, before any event was written.
    const { head } = rawRequest(port, 'GET /events HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n');
    const { status, headers } = await head;
    expect(status).toBe(200);
    expect(headers['content-type']).toBe('text/event-stream; charset=utf-8');
    expect(headers['cache-control']).toBe('no-cache, no-transform');
    expect(headers['x-accel-buffering']).toBe('no');
    expect(headers.connection).toBe('keep-alive');
    expect(headers['transfer-encoding']).toBe('chunked');
    expect(headers['content-length']).toBeUndefined();
    expect(headers['access-control-allow-origin']).toBe('https://app.example');
    expect(headers['x-trace']).toBe('abc');

    // fetch resolves with the response although no event was written.
    const client = await open(`${url}/events`);
    expect(client.response.status).toBe(200);
    expect(client.response.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    expect(client.response.headers.get('set-cookie')).toBe('a=1, b=2');
    expect(client.text).toBe('');
    expect(opened).toHaveLength(2);
    expect(opened.every((stream) => stream.isOpen)).toBe(true);
  });

  test('status can be overridden; an app Cache-Control is kept', async () => {
    const { url } = await serve((req, res) => {
      res.setHeader('Cache-Control', 'private, no-cache');
      const stream = createEventStream(req, res, { status: 201, keepalive: false });
      stream.send('hi');
    });
    const client = await open(url);
    expect(client.response.status).toBe(201);
    expect(client.response.headers.get('cache-control')).toBe('private, no-cache');
    await until(() => client.events.length === 1, 'the event');
    expect(client.events[0]?.data).toBe('hi');
  });

  test('a HEAD request gets the SSE headers and an ended, empty response', async () => {
    let stream: EventStream | undefined;
    const { url } = await serve((req, res) => {
      stream = createEventStream(req, res, { keepalive: false });
      expect(stream.send('ignored')).toBe(false);
    });
    const res = await fetch(url, { method: 'HEAD' });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    expect(await res.text()).toBe('');
    expect(stream?.isOpen).toBe(false);
  });

  test('the retry hint is the first thing on the wire', async () => {
    const { url } = await serve((req, res) => {
      const stream = createEventStream(req, res, { retry: 1500, keepalive: false });
      stream.send('first', { id: '1' });
    });
    const client = await open(url);
    await until(() => client.events.length === 1, 'the event');
    expect(client.text).toBe('retry: 1500\n\nid: 1\ndata: first\n\n');
    expect(client.parsed.retry).toBe(1500);
  });

  test('send, sendEvent and comment reach an EventSource client in order', async () => {
    const { url } = await serve((req, res) => {
      const stream = createEventStream(req, res, { keepalive: false });
      stream.comment('hello');
      stream.send({ n: 1 }, { event: 'obj', id: 'a' });
      stream.sendEvent({ data: 'two\nlines', id: 'b' });
      stream.send('', { event: 'obj' });
    });
    const es = new EventSource(url);
    cleanups.push(() => es.close());
    const got: string[] = [];
    // (eventsource v4 reports only the event's own id as lastEventId, not the one in force, so the
    // last event is checked without it.)
    es.addEventListener('obj', (e) => got.push(`obj:${e.data}:${e.lastEventId || '-'}`));
    es.onmessage = (e) => got.push(`message:${e.data}:${e.lastEventId}`);
    await until(() => got.length === 3, 'three events');
    expect(got).toEqual(['obj:{"n":1}:a', 'message:two\nlines:b', 'obj::-']);
  });
});

describe('lastEventId', () => {
  async function idFor(request: Buffer | string): Promise<string | undefined | 'not-called'> {
    let seen: string | undefined | 'not-called' = 'not-called';
    const { port } = await serve((req, res) => {
      const stream = createEventStream(req, res, { keepalive: false });
      seen = stream.lastEventId;
      stream.close();
    });
    const { head } = rawRequest(port, request);
    await head;
    return seen;
  }
  const get = (path: string, headerLines: (string | Buffer)[] = []) =>
    Buffer.concat([
      Buffer.from(`GET ${path} HTTP/1.1\r\nHost: t\r\n`),
      ...headerLines.flatMap((line) => [typeof line === 'string' ? Buffer.from(line) : line, Buffer.from('\r\n')]),
      Buffer.from('\r\n'),
    ]);
  const header = (value: string | Buffer) =>
    Buffer.concat([Buffer.from('Last-Event-ID: '), typeof value === 'string' ? Buffer.from(value) : value]);

  test('comes from the Last-Event-ID header, else the lastEventId query parameter', async () => {
    expect(await idFor(get('/', [header('42')]))).toBe('42');
    expect(await idFor(get('/?lastEventId=7'))).toBe('7');
    expect(await idFor(get('/?topic=x&lastEventId=a%20b'))).toBe('a b');
    // The header wins over the query.
    expect(await idFor(get('/?lastEventId=7', [header('42')]))).toBe('42');
    expect(await idFor(get('/'))).toBeUndefined();
  });

  test('the header as fetch and EventSource send it', async () => {
    let seen: (string | undefined)[] = [];
    const { url } = await serve((req, res) => {
      const stream = createEventStream(req, res, { keepalive: false });
      seen.push(stream.lastEventId);
      if (seen.length === 1) {
        stream.send('x', { id: 'evt-9' });
        stream.close({ retry: 10 });
      }
    });
    const client = await open(url, { 'Last-Event-ID': 'abc' });
    await client.done;
    expect(seen).toEqual(['abc']);
    seen = [];
    // EventSource reconnects with the id it saw.
    const es = new EventSource(url);
    cleanups.push(() => es.close());
    await until(() => seen.length === 2, 'the reconnection');
    expect(seen).toEqual([undefined, 'evt-9']);
  });

  test('too long, NUL or invalid UTF-8 is ignored; UTF-8 non-ASCII decodes correctly', async () => {
    expect(await idFor(get('/', [header('x'.repeat(512))]))).toBe('x'.repeat(512));
    expect(await idFor(get('/', [header('x'.repeat(513))]))).toBeUndefined();
    expect(await idFor(get(`/?lastEventId=${'y'.repeat(513)}`))).toBeUndefined();
    // Node's parser answers 400 to a NUL in a header value; the query is where a NUL can reach us.
    expect(await idFor(get('/?lastEventId=a%00b'))).toBeUndefined();
    expect(await idFor(get('/?lastEventId=a%0Ab'))).toBeUndefined();
    // Raw invalid UTF-8 bytes in the header, and percent-encoded in the query.
    expect(await idFor(get('/', [header(Buffer.from([0x61, 0xff, 0xfe, 0x62]))]))).toBeUndefined();
    expect(await idFor(get('/', [header(Buffer.from([0x61, 0xc3]))]))).toBeUndefined();
    expect(await idFor(get('/?lastEventId=a%FFb'))).toBeUndefined();
    // Real UTF-8 in the header (as browsers send it) and in the query.
    expect(await idFor(get('/', [header(Buffer.from('évé✓-😀', 'utf8'))]))).toBe('évé✓-😀');
    expect(await idFor(get(`/?lastEventId=${encodeURIComponent('ü✓')}`))).toBe('ü✓');
  });
});

describe('client disconnect', () => {
  const clients = {
    'EventSource.close()': async (url: string) => {
      const es = new EventSource(url);
      cleanups.push(() => es.close());
      await new Promise<void>((resolve, reject) => {
        es.onopen = () => resolve();
        es.onerror = () => reject(new Error('EventSource failed'));
      });
      return () => es.close();
    },
    'fetch abort': async (url: string) => {
      const client = await open(url);
      return () => client.abort();
    },
    'socket destroy': async (url: string) => {
      const { socket, head } = rawRequest(Number(new URL(url).port), 'GET / HTTP/1.1\r\nHost: t\r\n\r\n');
      await head;
      return () => socket.destroy();
    },
  };

  for (const [name, connect] of Object.entries(clients)) {
    test(`${name} aborts signal, runs onClose, resolves closed and leaves the scheduler within 1 s`, async () => {
      const s = scheduler();
      let stream: EventStream | undefined;
      const calls: string[] = [];
      const { url } = await serve((req, res) => {
        stream = createEventStream(req, res, { scheduler: s, keepalive: 10_000 });
        stream.signal.addEventListener('abort', () => calls.push('abort'));
        stream.onClose(() => calls.push('onClose'));
        void stream.closed.then(() => calls.push('closed'));
      });
      const disconnect = await connect(url);
      await until(() => stream !== undefined, 'the stream');
      const opened = stream as EventStream;
      expect(opened.isOpen).toBe(true);
      expect(s.has(opened)).toBe(true);
      expect(s.size).toBe(1);

      const start = Date.now();
      disconnect();
      await until(() => calls.length === 3, 'abort, onClose and closed', 1000);
      expect(Date.now() - start).toBeLessThan(1000);
      expect(calls).toEqual(['abort', 'onClose', 'closed']);
      expect(opened.signal.aborted).toBe(true);
      expect(opened.isOpen).toBe(false);
      expect(opened.closedForSlowness).toBe(false);
      expect(s.size).toBe(0);
      expect(s.has(opened)).toBe(false);
      // Registered after the fact: runs at once, and `closed` is already resolved.
      let late = false;
      opened.onClose(() => {
        late = true;
      });
      expect(late).toBe(true);
      await opened.closed;
    });
  }
});

describe('writes after close and bad sends', () => {
  test('send() after the client left or after close() returns false and never errors', async () => {
    const processErrors = watchProcess();
    const reported: unknown[] = [];
    const streams: EventStream[] = [];
    const { url } = await serve((req, res) => {
      const stream = createEventStream(req, res, { keepalive: false, onError: (err) => reported.push(err) });
      streams.push(stream);
      stream.send('hello');
      if (req.url === '/close') {
        stream.close();
        stream.close();
      } else {
        // Keep sending every turn, through the disconnect.
        const loop = () => {
          if (stream.send('tick')) setImmediate(loop);
        };
        loop();
      }
    });

    const left = await open(`${url}/leave`);
    await until(() => left.events.length >= 5, 'ticks');
    left.abort();
    const ended = await open(`${url}/close`);
    await ended.done;
    expect(ended.ended).toBe(true);
    expect(ended.events.map((e) => e.data)).toEqual(['hello']);
    await Promise.all(streams.map((stream) => stream.closed));

    for (const stream of streams) {
      expect(stream.isOpen).toBe(false);
      expect(stream.send('late')).toBe(false);
      expect(stream.send('late', { event: 'x', id: '1' })).toBe(false);
      expect(stream.sendEvent({ data: 'late' })).toBe(false);
      expect(stream.comment('late')).toBe(false);
      expect(stream.enqueue('data: late\n\n')).toBe(false);
      expect(() => stream.close()).not.toThrow();
      expect(await stream.ready()).toBe(false);
    }
    // Let any deferred 'error' event or rejection surface.
    await sleep(50);
    expect(processErrors).toEqual([]);
    expect(reported).toEqual([]);
  });

  test('a throwing send() (bad id, bad event, unserializable data) leaves the stream usable', async () => {
    const thrown: unknown[] = [];
    const { url } = await serve((req, res) => {
      const stream = createEventStream(req, res, { keepalive: false });
      const attempts = [
        () => stream.send('x', { id: 'a\nb' }),
        () => stream.send('x', { id: 'a\0b' }),
        () => stream.send('x', { event: 'a\rb' }),
        () => stream.send('x', { retry: -1 }),
        () => stream.send(10n),
        () => stream.send(undefined),
        () => stream.sendEvent({}),
      ];
      for (const attempt of attempts) {
        try {
          attempt();
        } catch (err) {
          thrown.push(err);
        }
      }
      stream.send('next', { id: 'ok' });
    });
    const client = await open(url);
    await until(() => client.events.length === 1, 'the next event');
    await sleep(30);
    expect(client.text).toBe('id: ok\ndata: next\n\n');
    expect(thrown).toHaveLength(7);
    expect(thrown.every((err) => err instanceof SseError)).toBe(true);
    expect((thrown as SseError[]).map((err) => err.code)).toEqual([
      'ERR_SSE_INVALID_FIELD',
      'ERR_SSE_INVALID_FIELD',
      'ERR_SSE_INVALID_FIELD',
      'ERR_SSE_INVALID_FIELD',
      'ERR_SSE_SERIALIZE',
      'ERR_SSE_NO_DATA',
      'ERR_SSE_NO_DATA',
    ]);
  });
});

describe('coalescing and heartbeats', () => {
  test('frames sent in one turn leave in one res.write, in order', async () => {
    const writes: string[] = [];
    const { port } = await serve((req, res) => {
      const stream = createEventStream(req, res, { keepalive: false });
      // Spy on the real response after the head went out: every body write passes here.
      const write = res.write;
      res.write = function (this: ServerResponse, chunk: unknown, ...rest: unknown[]) {
        writes.push(String(chunk));
        return (write as (...args: unknown[]) => boolean).call(this, chunk, ...rest);
      } as typeof res.write;
      for (let i = 0; i < 10; i++) stream.send(`a${i}`, { id: String(i) });
      stream.comment('between');
      stream.sendEvent({ event: 'e', data: 'last of turn 1' });
      setTimeout(() => {
        stream.send('b0');
        stream.send('b1');
        stream.send('b2');
      }, 20);
    });
    const { head, body } = rawRequest(port, 'GET / HTTP/1.1\r\nHost: t\r\n\r\n');
    await head;
    await until(() => body().includes('data: b2'), 'the second turn');
    expect(writes).toHaveLength(2);
    const expected1 = `${Array.from({ length: 10 }, (_, i) => `id: ${i}\ndata: a${i}\n\n`).join('')}: between\n\nevent: e\ndata: last of turn 1\n\n`;
    expect(writes[0]).toBe(expected1);
    expect(writes[1]).toBe('data: b0\n\ndata: b1\n\ndata: b2\n\n');
    // Order on the wire (after chunked framing) is the order of the sends.
    const order = [...body().matchAll(/data: (\w+)/g)].map((m) => m[1]);
    expect(order).toEqual([...Array.from({ length: 10 }, (_, i) => `a${i}`), 'last', 'b0', 'b1', 'b2']);
  });

  test('heartbeats reach idle streams only', async () => {
    const s = scheduler();
    const streams = new Map<string, EventStream>();
    const { url } = await serve((req, res) => {
      streams.set(req.url as string, createEventStream(req, res, { scheduler: s, keepalive: 100 }));
    });
    const busy = await open(`${url}/busy`);
    const idle = await open(`${url}/idle`);
    await until(() => streams.size === 2, 'both streams');
    const busyStream = streams.get('/busy') as EventStream;
    const start = Date.now();
    let n = 0;
    while (Date.now() - start < 700) {
      busyStream.send(`n${n++}`);
      await sleep(30);
    }
    expect(idle.parsed.comments.length).toBeGreaterThanOrEqual(3);
    expect(idle.text).toMatch(/^(:\n\n)+$/);
    expect(busy.parsed.comments).toEqual([]);
    expect(busy.events.length).toBe(n);
    // Once the busy stream goes quiet, it gets heartbeats too.
    await until(() => busy.parsed.comments.length >= 1, 'a heartbeat on the now idle stream', 2000);
  });
});

describe('shutdown', () => {
  test('close({ retry }) ends the stream and EventSource reconnects after the hint', async () => {
    const requests: { at: number; lastEventId: string | undefined }[] = [];
    const { url } = await serve((req, res) => {
      const stream = createEventStream(req, res, { keepalive: false });
      requests.push({ at: Date.now(), lastEventId: stream.lastEventId });
      stream.send(`visit ${requests.length}`, { id: String(requests.length) });
      if (requests.length === 1) stream.close({ retry: 50 });
    });
    const es = new EventSource(url);
    cleanups.push(() => es.close());
    const got: string[] = [];
    es.onmessage = (e) => got.push(e.data);
    await until(() => got.length === 2, 'the event after the reconnection', 5000);
    expect(got).toEqual(['visit 1', 'visit 2']);
    expect(requests[1]?.lastEventId).toBe('1');
    // eventsource's default delay is 3 s: the quick return shows the hint was applied.
    expect((requests[1]?.at ?? 0) - (requests[0]?.at ?? 0)).toBeLessThan(2000);
  });

  test('group.closeAll({ retry }) makes every client see the end and come back', async () => {
    const group = new StreamGroup();
    let requests = 0;
    const { url } = await serve((req, res) => {
      requests++;
      createEventStream(req, res, { group, keepalive: false }).send('hi');
    });
    const sources = Array.from({ length: 5 }, () => new EventSource(url));
    const opened: number[] = sources.map(() => 0);
    sources.forEach((es, i) => {
      cleanups.push(() => es.close());
      es.onopen = () => {
        opened[i] = (opened[i] ?? 0) + 1;
      };
    });
    await until(() => group.size === 5 && opened.every((n) => n === 1), 'five streams');
    group.closeAll({ retry: 30 });
    expect(group.size).toBe(0);
    await until(() => opened.every((n) => n === 2), 'five reconnections', 3000);
    expect(requests).toBe(10);
  });

  test('maxAge closes each stream at 80–100 % of its age, with jitter', async () => {
    const s = scheduler();
    const maxAge = 400;
    const serverLifetimes: number[] = [];
    const { url } = await serve((req, res) => {
      const opened = performance.now();
      const stream = createEventStream(req, res, { scheduler: s, maxAge, keepalive: false });
      void stream.closed.then(() => serverLifetimes.push(performance.now() - opened));
    });
    const lifetimes = await Promise.all(
      Array.from({ length: 20 }, async () => {
        const client = await open(url);
        const start = performance.now();
        await client.done;
        expect(client.ended).toBe(true);
        return performance.now() - start;
      }),
    );
    const tick = maxAge / 40;
    for (const lifetime of lifetimes) {
      // Lower bound: the client sees the head a little after the server started the clock.
      expect(lifetime).toBeGreaterThanOrEqual(0.8 * maxAge - 20);
      // Upper bound: one scheduler tick, plus slack for a loaded 2-core machine.
      expect(lifetime).toBeLessThanOrEqual(maxAge + tick + 150);
    }
    // Jittered, not all at once: of 20 uniform draws in 320–400 ms, several fall below 380 ms
    // (all of them landing in the top quarter has odds of 4^-20). Without jitter none would.
    expect(serverLifetimes).toHaveLength(20);
    for (const lifetime of serverLifetimes) expect(lifetime).toBeGreaterThanOrEqual(0.8 * maxAge - 1);
    expect(serverLifetimes.filter((lifetime) => lifetime < 0.95 * maxAge).length).toBeGreaterThanOrEqual(3);
    expect(s.size).toBe(0);
  });
});

describe('refuse()', () => {
  test('answers 204 and EventSource stops for good', async () => {
    let requests = 0;
    const { url } = await serve((_req, res) => {
      requests++;
      refuse(res);
    });
    const raw = await fetch(url);
    expect(raw.status).toBe(204);
    expect(await raw.text()).toBe('');
    requests = 0;

    const es = new EventSource(url);
    cleanups.push(() => es.close());
    let errors = 0;
    es.onerror = () => errors++;
    await until(() => errors === 1, 'the error event');
    expect(es.readyState).toBe(EventSource.CLOSED);
    // Any status but 200 would also stop it; what matters is that nothing comes back.
    await sleep(1000);
    expect(requests).toBe(1);
    expect(errors).toBe(1);
  });

  test('after the stream started it just ends the response', async () => {
    const { url } = await serve((req, res) => {
      createEventStream(req, res, { keepalive: false }).send('x');
      setTimeout(() => refuse(res), 10);
    });
    const client = await open(url);
    await client.done;
    expect(client.response.status).toBe(200);
    expect(client.ended).toBe(true);
    expect(client.events.map((e) => e.data)).toEqual(['x']);
  });
});

describe('limits', () => {
  test('maxConnections: past the limit, 503 + Retry-After and no stream bytes', async () => {
    const group = new StreamGroup({ maxConnections: 2, retryAfter: 7 });
    const handler: Handler = (req, res) => {
      try {
        createEventStream(req, res, { group, keepalive: false }).send('welcome');
      } catch (err) {
        if (!isSseError(err) || err.status === undefined) throw err;
        res.writeHead(err.status, err.headers).end();
      }
    };
    const { url } = await serve(handler);
    const first = await open(url);
    const second = await open(url);
    const third = await fetch(url);
    expect(third.status).toBe(503);
    expect(third.headers.get('retry-after')).toBe('7');
    expect(third.headers.get('content-type')).toBeNull();
    expect(await third.text()).toBe('');
    expect(group.refused).toBe(1);
    expect(group.size).toBe(2);
    await until(() => first.events.length === 1 && second.events.length === 1, 'the welcomes');

    // A slot frees when a client leaves.
    first.abort();
    await until(() => group.size === 1, 'the slot to free');
    const fourth = await open(url);
    expect(fourth.response.status).toBe(200);
    await until(() => fourth.events.length === 1, 'the welcome');
  });
});

describe('options', () => {
  const bad: [string, EventStreamOptions][] = [
    ['CR/LF in a header value', { headers: { 'X-Evil': 'a\r\nSet-Cookie: x=1' } }],
    ['LF in one of several header values', { headers: { 'X-Many': ['ok', 'b\nc'] } }],
    ['an invalid header name', { headers: { 'Bad Name': 'x' } }],
    ['an unknown overflow policy', { overflow: 'nope' as 'drop' }],
    ['a negative keepalive', { keepalive: -1 }],
    ['a zero sendTimeout', { sendTimeout: 0 }],
    ['a NaN highWaterMark', { highWaterMark: Number.NaN }],
    ['an infinite maxAge', { maxAge: Number.POSITIVE_INFINITY }],
    ['a negative retry', { retry: -5 }],
    ['a fractional retry', { retry: 1.5 }],
    ['a status below 200', { status: 101 }],
    ['a status past 999', { status: 1000 }],
    ['an unknown option name (keepAlive for keepalive)', { keepAlive: 5 } as EventStreamOptions],
  ];
  for (const [what, options] of bad) {
    test(`${what} → ERR_SSE_INVALID_OPTION, nothing written, the handler can answer 500`, async () => {
      const errors: unknown[] = [];
      const { url } = await serve((req, res) => {
        try {
          createEventStream(req, res, options);
          res.end('should not open');
        } catch (err) {
          errors.push(err);
          expect(res.headersSent).toBe(false);
          expect(res.getHeader('content-type')).toBeUndefined();
          res.writeHead(500, { 'Content-Type': 'text/plain' }).end('bad options');
        }
      });
      const response = await fetch(url);
      expect(response.status).toBe(500);
      expect(response.headers.get('content-type')).toBe('text/plain');
      expect(await response.text()).toBe('bad options');
      expect(errors).toHaveLength(1);
      expect(isSseError(errors[0], 'ERR_SSE_INVALID_OPTION')).toBe(true);
    });
  }

  test('a response that already started → ERR_SSE_HEADERS_SENT', async () => {
    const errors: unknown[] = [];
    const { url } = await serve((req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      res.write('started');
      try {
        createEventStream(req, res);
      } catch (err) {
        errors.push(err);
      }
      res.end();
    });
    const response = await fetch(url);
    expect(await response.text()).toBe('started');
    expect(isSseError(errors[0], 'ERR_SSE_HEADERS_SENT')).toBe(true);
  });
});
