/**
 * `@ssekit/core/testing`: our parser must agree with a real one (`eventsource-parser`, fed the way the
 * `eventsource` client feeds it) on any bytes cut anywhere, and `collectEvents` / `sseParser` must read
 * real streams from a URL, a node:http server, an Express app and a Fastify instance.
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { createEventStream, type EventStream, encode } from '@ssekit/core';
import { collectEvents, EventStreamParser, type ParsedEvent, parseEventStream, sseParser } from '@ssekit/core/testing';
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import fc from 'fast-check';
import request from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';

// Express and Fastify are installed for their adapter packages, not for core: load them from there.
const requireFromExpress = createRequire(new URL('../../express/package.json', import.meta.url));
const requireFromFastify = createRequire(new URL('../../fastify/package.json', import.meta.url));
// Their types are not resolvable from here either: the little of them these tests use, typed by hand.
type Listener = (req: IncomingMessage, res: ServerResponse) => void;
interface ExpressApp extends Listener {
  get(path: string, handler: (req: IncomingMessage, res: ServerResponse & { send(body: string): void }) => void): void;
}
interface FastifyApp {
  get(
    path: string,
    handler: (request: { query: unknown }, reply: { hijack(): void; raw: ServerResponse }) => void,
  ): void;
  inject(options: Record<string, unknown>): Promise<{
    statusCode: number;
    headers: Record<string, string | string[] | number | undefined>;
    stream(): NodeJS.ReadableStream;
  }>;
  listen(options: { port: number; host: string }): Promise<string>;
  close(): Promise<void>;
  server: Server;
}
const express = requireFromExpress('express') as () => ExpressApp;
const Fastify = requireFromFastify('fastify') as () => FastifyApp;

// ---------------------------------------------------------------------------------------------------
// The reference: eventsource-parser, fed through one streaming TextDecoder as the eventsource client does.

interface Reference {
  events: EventSourceMessage[];
  comments: string[];
  retries: number[];
}

function reference(chunks: Uint8Array[]): Reference {
  const out: Reference = { events: [], comments: [], retries: [] };
  const parser = createParser({
    onEvent: (event) => out.events.push(event),
    onComment: (comment) => out.comments.push(comment),
    onRetry: (retry) => out.retries.push(retry),
  });
  const decoder = new TextDecoder();
  for (const chunk of chunks) parser.feed(decoder.decode(chunk, { stream: true }));
  return out;
}

function ours(chunks: Uint8Array[]): EventStreamParser['result'] {
  const parser = new EventStreamParser();
  for (const chunk of chunks) parser.feed(chunk);
  return parser.result;
}

/**
 * Compares our result with the reference. eventsource-parser reports an event's own `id` field (or
 * undefined) rather than the persistent last event id, so ids are compared where it reports one.
 */
function expectAgreement(mine: EventStreamParser['result'], ref: Reference): void {
  expect(mine.events.map((e) => ({ type: e.type, data: e.data }))).toEqual(
    ref.events.map((e) => ({ type: e.event ?? 'message', data: e.data })),
  );
  ref.events.forEach((e, i) => {
    if (e.id !== undefined) expect(mine.events[i]?.lastEventId).toBe(e.id);
  });
  expect(mine.comments).toEqual(ref.comments);
  expect(mine.retry).toBe(ref.retries.at(-1));
}

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);

/** Pieces of an event stream, as bytes: field names, separators, every line break, BOMs, bad UTF-8. */
const token = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom('data', 'data:', 'data: ', 'event:', 'event: ', 'id:', 'id: ') },
  { weight: 2, arbitrary: fc.constantFrom('retry:', 'retry: ', 'retry: 12', 'retry:3x', ':', ': ', 'x', 'ab') },
  { weight: 8, arbitrary: fc.constantFrom('\n', '\r', '\r\n', '\n\n', '\r\r', '\r\n\r\n') },
  { weight: 2, arbitrary: fc.constantFrom(' ', '  ', '\0', 'é', '😀', '\u2028', '\uFEFF', '12', 'message') },
  { weight: 3, arbitrary: fc.string({ unit: 'binary', maxLength: 4 }) },
);
const tokenBytes = fc.oneof(
  { weight: 10, arbitrary: token.map(bytes) },
  // Raw bytes: a BOM, half a BOM, bytes that are not UTF-8, half of a multi-byte character.
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      Uint8Array.of(0xef, 0xbb, 0xbf),
      Uint8Array.of(0xef),
      Uint8Array.of(0xff),
      Uint8Array.of(0xc3),
      Uint8Array.of(0xf0, 0x9f),
    ),
  },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 4 }) },
);
const streamBytes = fc
  .tuple(fc.boolean(), fc.array(tokenBytes, { maxLength: 40 }))
  .map(([bom, parts]) => Buffer.concat([bom ? Buffer.of(0xef, 0xbb, 0xbf) : Buffer.alloc(0), ...parts]));

function splitAt(input: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = cuts.map((c) => c % (input.length + 1)).sort((a, b) => a - b);
  const chunks: Uint8Array[] = [];
  let last = 0;
  // Repeated cut points on purpose: they make empty chunks, which fetch may yield too.
  for (const p of points) {
    chunks.push(input.subarray(last, p));
    last = p;
  }
  chunks.push(input.subarray(last));
  return chunks;
}

describe('EventStreamParser agrees with eventsource-parser', () => {
  it('on arbitrary bytes cut at arbitrary boundaries', () => {
    fc.assert(
      fc.property(streamBytes, fc.array(fc.nat(), { maxLength: 20 }), (input, cuts) => {
        const chunks = splitAt(input, cuts);
        const mine = ours(chunks);
        // The cuts never change what we read.
        expect(mine).toEqual(parseEventStream(input));
        if (!input.includes(0x0d)) expectAgreement(mine, reference(chunks));
        // eventsource-parser holds a CR that ends a chunk until a later chunk brings a line break (to
        // tell CR from CRLF), although the CR already ended the line; at the end of the input that
        // event never comes. Ending both inputs with one more LF lets it catch up.
        chunks.push(bytes('\n'));
        expectAgreement(ours(chunks), reference(chunks));
      }),
      { numRuns: 1000 },
    );
  });

  it('on every single-byte split of a stream with CRLF, CR, BOM, retry, comments and ids', () => {
    const input = Buffer.concat([
      Buffer.of(0xef, 0xbb, 0xbf),
      Buffer.from(
        ': hello\r\nretry: 250\r\nid: a\r\nevent: e\r\ndata: 1\r\ndata:2\r\n\r\n' +
          'data: é😀\r\rid: b\0c\ndata: nul-id ignored\n\nid\ndata\n\n: bye\r\n',
      ),
    ]);
    const whole = parseEventStream(input);
    expect(whole.events).toEqual([
      { type: 'e', data: '1\n2', lastEventId: 'a' },
      { type: 'message', data: 'é😀', lastEventId: 'a' },
      { type: 'message', data: 'nul-id ignored', lastEventId: 'a' },
      { type: 'message', data: '', lastEventId: '' },
    ]);
    expect(whole.comments).toEqual(['hello', 'bye']);
    expect(whole.retry).toBe(250);
    for (let i = 0; i <= input.length; i++) {
      for (const chunks of [
        [input.subarray(0, i), input.subarray(i)],
        [input.subarray(0, i), new Uint8Array(0), input.subarray(i)],
      ]) {
        const mine = ours(chunks);
        expect(mine).toEqual(whole);
        expectAgreement(mine, reference(chunks));
      }
    }
  });
});

describe('EventStreamParser follows WHATWG HTML §9.2.6', () => {
  it('treats a CRLF cut between chunks as one line break, even with an empty chunk between', () => {
    for (const chunks of [
      ['data: a\r', '\ndata: b\r\n\r\n'],
      ['data: a\r', '', '\ndata: b\r\n\r\n'],
      ['data: a\r', '\n', 'data: b\r', '\n\r', '\n'],
    ]) {
      const parser = new EventStreamParser();
      for (const chunk of chunks) parser.feed(Buffer.from(chunk));
      expect(parser.result.events).toEqual([{ type: 'message', data: 'a\nb', lastEventId: '' }]);
      const text = new EventStreamParser();
      for (const chunk of chunks) text.feed(chunk);
      expect(text.result.events).toEqual(parser.result.events);
    }
  });

  it('skips one leading BOM, also when cut across chunks, and only one', () => {
    expect(parseEventStream(Buffer.from('\uFEFFdata: 1\n\n')).events.map((e) => e.data)).toEqual(['1']);
    expect(parseEventStream('\uFEFFdata: 1\n\n').events.map((e) => e.data)).toEqual(['1']);
    const split = new EventStreamParser();
    split.feed(Uint8Array.of(0xef));
    split.feed(Buffer.concat([Buffer.of(0xbb, 0xbf), Buffer.from('data:1\n\ndata:2\n\n')]));
    expect(split.result.events.map((e) => e.data)).toEqual(['1', '2']);
    // A second BOM is content: the line's field name is "\uFEFFdata", which is ignored (WPT format-bom).
    for (const input of [Buffer.from('\uFEFF\uFEFFdata: 1\n\ndata: 2\n\n'), '\uFEFF\uFEFFdata: 1\n\ndata: 2\n\n']) {
      expect(parseEventStream(input).events.map((e) => e.data)).toEqual(['2']);
    }
    expect(parseEventStream('data: 1\n\n\uFEFFdata: 2\n\ndata: 3\n\n').events.map((e) => e.data)).toEqual(['1', '3']);
  });

  it('reads retry as digits only, keeping the last valid value', () => {
    expect(parseEventStream('retry: 100\n\n').retry).toBe(100);
    expect(parseEventStream('retry: 100\nretry: 1e3\nretry: -5\nretry:  7\nretry: 7.5\n\n').retry).toBe(100);
    expect(parseEventStream('retry:0\nretry: 42\n\n').retry).toBe(42);
  });

  it('collects comments without the colon and one space, and they dispatch nothing', () => {
    const parsed = parseEventStream(':\n: a\n:  b\n:c:d\n\n');
    expect(parsed.comments).toEqual(['', 'a', ' b', 'c:d']);
    expect(parsed.events).toEqual([]);
  });

  it('ignores an id holding NUL, keeps the last id across events, and lets an id-only block set it', () => {
    const parsed = parseEventStream(
      'id: 1\ndata: a\n\ndata: b\n\nid: x\0y\ndata: c\n\nid: 2\n\ndata: d\n\nid\ndata: e\n\n',
    );
    expect(parsed.events).toEqual([
      { type: 'message', data: 'a', lastEventId: '1' },
      { type: 'message', data: 'b', lastEventId: '1' },
      { type: 'message', data: 'c', lastEventId: '1' },
      { type: 'message', data: 'd', lastEventId: '2' },
      { type: 'message', data: 'e', lastEventId: '' },
    ]);
    expect(parsed.lastEventId).toBe('');
  });

  it('strips one space after the colon, resets the type after each event, and drops an unfinished event', () => {
    const parsed = parseEventStream('event:  spaced\ndata:  x\n\ndata:y\n\nevent: lost\ndata: never dispatched');
    expect(parsed.events).toEqual([
      { type: ' spaced', data: ' x', lastEventId: '' },
      { type: 'message', data: 'y', lastEventId: '' },
    ]);
  });

  it('calls onEvent for each event as it completes', () => {
    const seen: ParsedEvent[] = [];
    const parser = new EventStreamParser((event) => seen.push(event));
    parser.feed('data: 1\n');
    expect(seen).toEqual([]);
    parser.feed('\ndata: 2\n\n');
    expect(seen.map((e) => e.data)).toEqual(['1', '2']);
  });
});

// ---------------------------------------------------------------------------------------------------
// collectEvents and sseParser against real servers.

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function listen(server: Server): Promise<number> {
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

/** A handler that opens a stream, sends three events and stays open; it records its streams. */
function threeEvents(streams: EventStream[]) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    const stream = createEventStream(req, res, { keepalive: false });
    streams.push(stream);
    stream.send('one', { id: '1' });
    stream.send({ two: 2 }, { event: 'second', id: '2' });
    stream.send('three\nlines\rhere', { id: '3' });
  };
}

const THREE: ParsedEvent[] = [
  { type: 'message', data: 'one', lastEventId: '1' },
  { type: 'second', data: '{"two":2}', lastEventId: '2' },
  { type: 'message', data: 'three\nlines\nhere', lastEventId: '3' },
];

async function within<T>(ms: number, promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

describe('collectEvents', () => {
  it('reads from a URL, stops after `count` and disconnects', async () => {
    const streams: EventStream[] = [];
    const port = await listen(createServer(threeEvents(streams)));
    const result = await collectEvents(`http://127.0.0.1:${port}/events`, { count: 3 });
    expect(result.events).toEqual(THREE);
    expect(result.status).toBe(200);
    expect(result.headers['content-type']).toBe('text/event-stream; charset=utf-8');
    expect(result.lastEventId).toBe('3');
    // The server sees the client leave.
    await within(1000, streams[0]!.closed, 'server-side close');
    expect(streams[0]!.isOpen).toBe(false);
  });

  it('reads from a node:http server with path, Last-Event-ID and headers, until the stream ends', async () => {
    const server = createServer((req, res) => {
      const stream = createEventStream(req, res, { keepalive: false });
      stream.send({ url: req.url, lastEventId: stream.lastEventId, custom: req.headers['x-custom'] });
      stream.close();
    });
    await listen(server);
    const result = await collectEvents(server, {
      path: '/feed?x=1',
      lastEventId: 'abc-41',
      headers: { 'x-custom': 'yes' },
    });
    expect(result.events.map((e) => JSON.parse(e.data))).toEqual([
      { url: '/feed?x=1', lastEventId: 'abc-41', custom: 'yes' },
    ]);
  });

  it('reads from an Express app (served on an ephemeral port for the call)', async () => {
    const streams: EventStream[] = [];
    const app = express();
    app.get('/events', threeEvents(streams));
    app.get('/', (_req, res) => {
      res.send('not a stream');
    });
    const result = await collectEvents(app, { path: '/events', count: 3 });
    expect(result.events).toEqual(THREE);
    expect(result.status).toBe(200);
    await within(1000, streams[0]!.closed, 'server-side close');
  });

  it('reads from a Fastify instance through inject, and from a real listen', async () => {
    const app = Fastify();
    cleanups.push(() => app.close());
    app.get('/events', (request, reply) => {
      reply.hijack();
      // Plain frames on the raw response: this checks collectEvents, not the adapter.
      reply.raw.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'x-from': 'fastify' });
      reply.raw.write(encode({ data: 'one', id: '1' }));
      reply.raw.write(encode({ data: { two: 2 }, event: 'second', id: '2' }));
      reply.raw.write(encode({ data: 'three\nlines\rhere', id: '3' }));
      if (request.query && (request.query as Record<string, string>).end === '1') reply.raw.end();
    });
    const injected = await collectEvents(app, { path: '/events', count: 3 });
    expect(injected.events).toEqual(THREE);
    expect(injected.status).toBe(200);
    expect(injected.headers['x-from']).toBe('fastify');
    const ended = await collectEvents(app, { path: '/events?end=1' });
    expect(ended.events).toEqual(THREE);

    await app.listen({ port: 0, host: '127.0.0.1' });
    const listened = await collectEvents(app.server, { path: '/events', count: 3 });
    expect(listened.events).toEqual(THREE);
    expect(listened.headers['x-from']).toBe('fastify');
  });

  it('rejects on timeout with the events that did arrive, and disconnects', async () => {
    const streams: EventStream[] = [];
    const server = createServer(threeEvents(streams));
    await listen(server);
    const error = (await collectEvents(server, { count: 5, timeout: 300 }).catch((err) => err)) as Error & {
      events: ParsedEvent[];
    };
    expect(error).toBeInstanceOf(Error);
    expect(error.message).toContain('3 of 5');
    expect(error.events).toEqual(THREE);
    await within(1000, streams[0]!.closed, 'server-side close');
  });

  it('rejects on timeout when the server never answers at all (fetch and inject)', async () => {
    const held: ServerResponse[] = [];
    const server = createServer((_req, res) => {
      held.push(res);
    });
    await listen(server);
    const started = Date.now();
    const error = (await within(
      3000,
      collectEvents(server, { timeout: 300 }).catch((err) => err),
      'collectEvents to give up',
    )) as Error & { events: ParsedEvent[] };
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    expect(error.message).toContain('within 300 ms');
    expect(error.events).toEqual([]);
    expect(held).toHaveLength(1);
    // The request was abandoned: the server sees the connection go.
    await within(1000, once(held[0] as ServerResponse, 'close'), 'server-side close');

    const app = Fastify();
    cleanups.push(() => app.close());
    app.get('/silent', (_request, reply) => {
      reply.hijack();
    });
    const injected = (await within(
      3000,
      collectEvents(app, { path: '/silent', timeout: 300 }).catch((err) => err),
      'collectEvents (inject) to give up',
    )) as Error & { events: ParsedEvent[] };
    expect(injected.message).toContain('within 300 ms');
    expect(injected.events).toEqual([]);
  });
});

describe('sseParser (supertest)', () => {
  it('gives the parsed events as res.body', async () => {
    const streams: EventStream[] = [];
    const app = express();
    app.get('/events', threeEvents(streams));
    const res = await request(app)
      .get('/events')
      .buffer(true)
      .parse(sseParser({ count: 3 }));
    expect(res.status).toBe(200);
    expect(res.body).toEqual(THREE);
    await within(1000, streams[0]!.closed, 'server-side close');
  });

  it('reads until the server ends the stream without a count', async () => {
    const server = createServer((req, res) => {
      const stream = createEventStream(req, res, { keepalive: false });
      stream.send('a');
      stream.send('b', { event: 'x' });
      setTimeout(() => stream.close(), 20);
    });
    await listen(server);
    const res = await request(server).get('/').buffer(true).parse(sseParser());
    expect(res.body).toEqual([
      { type: 'message', data: 'a', lastEventId: '' },
      { type: 'x', data: 'b', lastEventId: '' },
    ]);
  });
});
