import http from 'node:http';
import net from 'node:net';
import { createHub, EventStream, type Hub, type NodeTransport, refuse, SseError } from '@ssekit/core';
import { sseParser } from '@ssekit/core/testing';
import { sse } from '@ssekit/express';
import compression from 'compression';
import cors from 'cors';
import { EventSource } from 'eventsource';
import type { Request, Response } from 'express';
import request from 'supertest';
import { afterEach, describe, expect, test } from 'vitest';
import { closeAll, connect, rawGet, serve, until, versions } from './helpers.js';

const hubs: Hub[] = [];
afterEach(async () => {
  await Promise.all(hubs.splice(0).map((hub) => hub.close()));
  await closeAll();
});

function hubForTest(options: Parameters<typeof createHub>[0] = {}): Hub {
  const hub = createHub(options);
  hubs.push(hub);
  return hub;
}

describe.each(versions)('$name', ({ express }) => {
  test('opens the stream with SSE headers, keeps headers set before it, and res.sse delivers events', async () => {
    const app = express();
    app.use(cors({ origin: 'https://app.example' }));
    let seen: unknown;
    app.get('/events', sse({ keepalive: false }), (_req: Request, res: Response) => {
      seen = res.sse;
      res.sse.send({ hello: 'world' }, { event: 'greet', id: '1' });
      res.sse.send('two', { id: '2' });
      res.sse.close();
    });
    const res = await request(app)
      .get('/events')
      .set('Accept', 'text/event-stream')
      .set('Origin', 'https://app.example')
      .buffer(true)
      .parse(sseParser());
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('text/event-stream; charset=utf-8');
    expect(res.headers['cache-control']).toBe('no-cache, no-transform');
    expect(res.headers['x-accel-buffering']).toBe('no');
    expect(res.headers.connection).toBe('keep-alive');
    expect(res.headers['access-control-allow-origin']).toBe('https://app.example');
    expect(res.body).toEqual([
      { type: 'greet', data: '{"hello":"world"}', lastEventId: '1' },
      { type: 'message', data: 'two', lastEventId: '2' },
    ]);
    expect(seen).toBeInstanceOf(EventStream);
  });

  test('events reach a real EventSource as they are sent, and the client leaving closes res.sse', async () => {
    const app = express();
    let stream: EventStream | undefined;
    app.get('/events', sse({ keepalive: false }), (_req: Request, res: Response) => {
      stream = res.sse;
      res.sse.send('first');
    });
    const { url } = await serve(app);
    const es = new EventSource(`${url}/events`);
    const got: string[] = [];
    await new Promise<void>((resolve, reject) => {
      es.onmessage = (event) => {
        got.push(event.data);
        if (got.length === 1) stream?.send('second');
        if (got.length === 2) resolve();
      };
      es.onerror = () => reject(new Error('EventSource failed'));
    });
    expect(got).toEqual(['first', 'second']);
    es.close();
    await stream?.closed;
    expect(stream?.isOpen).toBe(false);
  });

  test('with a hub: subscribes without a handler, and a handler may still follow', async () => {
    const hub = hubForTest();
    const app = express();
    app.get('/prices', sse({ hub, topics: () => ['prices'], keepalive: false }));
    app.get('/both', sse({ hub, topics: ['prices', 'news'], keepalive: false }), (_req: Request, res: Response) => {
      res.sse.send('welcome', { event: 'hello' });
    });
    const { url } = await serve(app);
    const prices = await connect(`${url}/prices`);
    const both = await connect(`${url}/both`);
    await both.waitFor(1);
    await until(() => hub.stats().streams === 2, 5000, 'two subscriptions');
    const id1 = await hub.publish('prices', { symbol: 'ACME', value: 1 });
    const id2 = await hub.publish('news', 'hello');
    const id3 = await hub.publish(['prices', 'news'], 'both');
    expect(await prices.waitFor(2)).toEqual([
      { type: 'message', data: '{"symbol":"ACME","value":1}', lastEventId: id1 },
      { type: 'message', data: 'both', lastEventId: id3 },
    ]);
    expect(await both.waitFor(4)).toEqual([
      { type: 'hello', data: 'welcome', lastEventId: expect.any(String) },
      { type: 'message', data: '{"symbol":"ACME","value":1}', lastEventId: id1 },
      { type: 'message', data: 'hello', lastEventId: id2 },
      { type: 'message', data: 'both', lastEventId: id3 },
    ]);
    prices.close();
    both.close();
    await until(() => hub.stats().streams === 0, 5000, 'subscriptions to end');
  });

  test('a per-request filter decides which hub messages reach the stream', async () => {
    const hub = hubForTest();
    const app = express();
    app.get(
      '/user/:name',
      sse({
        hub,
        topics: ['notes'],
        keepalive: false,
        // Runs once per message per stream, with the request that opened the stream.
        filter: (message, req) => message.event === req.params.name,
      }),
    );
    const { url } = await serve(app);
    const ann = await connect(`${url}/user/ann`);
    const bob = await connect(`${url}/user/bob`);
    await until(() => hub.stats().streams === 2, 5000, 'two subscriptions');
    await hub.publish('notes', 'for bob', { event: 'bob' });
    await hub.publish('notes', 'for ann', { event: 'ann' });
    expect((await ann.waitFor(1)).map((e) => e.data)).toEqual(['for ann']);
    expect((await bob.waitFor(1)).map((e) => e.data)).toEqual(['for bob']);
    expect(ann.events).toHaveLength(1);
  });

  test('an EventSource whose connection is killed mid-stream reconnects with Last-Event-ID and gets exactly the missed events', async () => {
    const hub = hubForTest();
    const app = express();
    const lastEventIds: (string | undefined)[] = [];
    const streams: EventStream[] = [];
    app.get(
      '/prices',
      (req: Request, _res: Response, next: () => void) => {
        lastEventIds.push(req.get('last-event-id'));
        next();
      },
      sse({ hub, topics: ['prices'], retry: 20, keepalive: false }),
      (_req: Request, res: Response) => {
        streams.push(res.sse);
      },
    );
    const { url } = await serve(app);
    const es = new EventSource(`${url}/prices`);
    const received: string[] = [];
    es.onmessage = (event) => received.push(event.data);
    await until(() => hub.stats().streams === 1, 5000, 'the first subscription');
    for (let i = 1; i <= 5; i++) await hub.publish('prices', `tick ${i}`);
    await until(() => received.length === 5, 5000, 'ticks 1-5');
    // Kill the connection (no goodbye), then keep publishing while the client is away and reconnecting.
    (streams[0]?.transport as NodeTransport | undefined)?.response.destroy();
    for (let i = 6; i <= 10; i++) await hub.publish('prices', `tick ${i}`);
    await until(() => streams.length === 2, 5000, 'the reconnection');
    for (let i = 11; i <= 15; i++) await hub.publish('prices', `tick ${i}`);
    await until(() => received.length >= 15, 5000, 'ticks 1-15');
    es.close();
    expect(received).toEqual(Array.from({ length: 15 }, (_, i) => `tick ${i + 1}`));
    expect(lastEventIds[0]).toBeUndefined();
    expect(lastEventIds[1]).toMatch(/.+/);
  });

  test('an EventSource killed mid-stream and a new one started with its id get every event exactly once, while publishing goes on', async () => {
    const hub = hubForTest();
    const app = express();
    app.get('/prices', sse({ hub, topics: ['prices'], keepalive: false }));
    const { url } = await serve(app);
    const first = new EventSource(`${url}/prices`);
    const seen: string[] = [];
    let lastId = '';
    first.onmessage = (event) => {
      seen.push(event.data);
      lastId = event.lastEventId;
    };
    await until(() => hub.stats().streams === 1, 5000, 'the first subscription');
    let n = 0;
    let publishing = true;
    // A publisher that never pauses: ticks are published while the second client's replay is written.
    const publisher = (async () => {
      while (publishing) {
        await hub.publish('prices', `tick ${++n}`);
        await new Promise((resolve) => setImmediate(resolve));
      }
    })();
    await until(() => seen.length >= 20, 5000, 'the first 20 ticks');
    first.close();
    const resumeAfter = lastId;
    const second = new EventSource(`${url}/prices`, {
      fetch: (input, init) => fetch(input, { ...init, headers: { ...init?.headers, 'Last-Event-ID': resumeAfter } }),
    });
    second.onmessage = (event) => seen.push(event.data);
    await until(() => seen.length >= 100, 10_000, '100 ticks in all');
    second.close();
    publishing = false;
    await publisher;
    expect(seen.slice(0, 100)).toEqual(Array.from({ length: 100 }, (_, i) => `tick ${i + 1}`));
  });

  test('a ?lastEventId= query resumes too (for clients that cannot set headers)', async () => {
    const hub = hubForTest();
    const app = express();
    app.get('/prices', sse({ hub, topics: ['prices'], keepalive: false }));
    const { url } = await serve(app);
    const first = await connect(`${url}/prices`);
    await until(() => hub.stats().streams === 1, 5000, 'a subscription');
    await hub.publish('prices', 'a');
    await hub.publish('prices', 'b');
    const [, b] = await first.waitFor(2);
    first.close();
    await until(() => hub.stats().streams === 0, 5000, 'the client to leave');
    await hub.publish('prices', 'c');
    await hub.publish('prices', 'd');
    const again = await connect(`${url}/prices?lastEventId=${encodeURIComponent(b?.lastEventId ?? '')}`);
    expect((await again.waitFor(2)).map((e) => e.data)).toEqual(['c', 'd']);
    await hub.publish('prices', 'e');
    expect((await again.waitFor(3)).map((e) => e.data)).toEqual(['c', 'd', 'e']);
  });

  test('an unknown Last-Event-ID gets the gap event, then live events', async () => {
    const hub = hubForTest();
    const app = express();
    app.get('/prices', sse({ hub, topics: ['prices'], keepalive: false }));
    const { url } = await serve(app);
    const client = await connect(`${url}/prices`, { 'last-event-id': 'no-such-id' });
    const [gap] = await client.waitFor(1);
    expect(gap?.type).toBe('ssekit-gap');
    expect(JSON.parse(gap?.data ?? '')).toMatchObject({ lastEventId: 'no-such-id' });
    await hub.publish('prices', 'live');
    expect((await client.waitFor(2))[1]?.data).toBe('live');
  });

  test('a topics function that refuses answers 403 (or its own status) before any stream byte', async () => {
    const hub = hubForTest();
    const app = express();
    app.get('/false', sse({ hub, topics: () => false }));
    app.get(
      '/throw',
      sse({
        hub,
        topics: () => {
          throw new SseError('ERR_SSE_FORBIDDEN', 'nope', { status: 403 });
        },
      }),
    );
    app.get(
      '/reject',
      sse({ hub, topics: async () => Promise.reject(Object.assign(new Error('later'), { statusCode: 403 })) }),
    );
    app.get(
      '/401',
      sse({
        hub,
        topics: async () =>
          Object.assign(new Error('log in first'), { status: 401, headers: { 'WWW-Authenticate': 'Bearer' } }),
      }),
    );
    const errors: unknown[] = [];
    app.use((err: Error, _req: Request, _res: Response, next: (e: unknown) => void) => {
      errors.push(err);
      next(err);
    });
    const { url } = await serve(app);
    for (const path of ['/false', '/throw', '/reject']) {
      const wire = await rawGet(`${url}${path}`);
      expect(wire.split('\n')[0]).toBe('403');
      expect(wire).not.toContain('text/event-stream');
      expect(wire).not.toMatch(/^data:/m);
    }
    const wire = await rawGet(`${url}/401`);
    expect(wire.split('\n')[0]).toBe('401');
    expect(wire).toContain('www-authenticate: Bearer');
    expect(wire).toContain('log in first');
    expect(errors.map((e) => (e as { code?: string }).code)).toEqual([
      'ERR_SSE_FORBIDDEN',
      'ERR_SSE_FORBIDDEN',
      'ERR_SSE_FORBIDDEN',
      'ERR_SSE_FORBIDDEN',
    ]);
    expect(hub.stats().streams).toBe(0);
  });

  test('past maxConnections: 503 with Retry-After and no stream byte; a freed slot admits again', async () => {
    const app = express();
    const limited = sse({ maxConnections: 2, retryAfter: 7, keepalive: false });
    app.get('/events', limited, (_req: Request, res: Response) => res.sse.send('hi'));
    const { url } = await serve(app);
    const a = await connect(`${url}/events`);
    const b = await connect(`${url}/events`);
    await a.waitFor(1);
    await b.waitFor(1);
    expect(limited.group.size).toBe(2);
    const wire = await rawGet(`${url}/events`);
    expect(wire.split('\n')[0]).toBe('503');
    expect(wire).toContain('retry-after: 7');
    expect(wire).not.toContain('text/event-stream');
    expect(wire).not.toMatch(/^data:/m);
    expect(limited.group.refused).toBe(1);
    a.close();
    await until(() => limited.group.size === 1, 5000, 'a slot to free');
    const c = await connect(`${url}/events`);
    expect((await c.waitFor(1))[0]?.data).toBe('hi');
  });

  test("with a hub and no own limit, the hub's maxConnections applies", async () => {
    const hub = hubForTest({ maxConnections: 1, retryAfter: 3 });
    const app = express();
    const middleware = sse({ hub, topics: ['t'], keepalive: false });
    expect(middleware.group).toBe(hub.group);
    app.get('/t', middleware);
    const { url } = await serve(app);
    const first = await connect(`${url}/t`);
    expect(first.status).toBe(200);
    await until(() => hub.stats().streams === 1, 5000, 'a subscription');
    const wire = await rawGet(`${url}/t`);
    expect(wire.split('\n')[0]).toBe('503');
    expect(wire).toContain('retry-after: 3');
    expect(hub.stats().refused).toBe(1);
  });

  test('negotiate: one URL serves JSON to fetch() and a stream to EventSource (same route and next route)', async () => {
    const hub = hubForTest();
    const app = express();
    // Same route: the handler after sse() answers when no stream was opened.
    app.get(
      '/a',
      sse({ hub, topics: ['prices'], negotiate: true, keepalive: false }),
      (_req: Request, res: Response) => {
        if (res.sse === undefined) res.json({ snapshot: 'a' });
      },
    );
    // Or a separate route for the same path.
    app.get('/b', sse({ hub, topics: ['prices'], negotiate: true, keepalive: false }));
    app.get('/b', (_req: Request, res: Response) => res.json({ snapshot: 'b' }));
    const { url } = await serve(app);
    for (const path of ['a', 'b']) {
      const json = await fetch(`${url}/${path}`, { headers: { accept: 'application/json' } });
      expect(json.status).toBe(200);
      expect(await json.json()).toEqual({ snapshot: path });
      const stream = await connect(`${url}/${path}`);
      expect(stream.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
      await until(() => hub.stats().streams === 1, 5000, 'a subscription');
      await hub.publish('prices', path);
      expect((await stream.waitFor(1))[0]?.data).toBe(path);
      stream.close();
      await until(() => hub.stats().streams === 0, 5000, 'the client to leave');
    }
  });

  test('without negotiate: a request refusing text/event-stream gets 406; */* and no Accept open the stream', async () => {
    const app = express();
    const codes: unknown[] = [];
    app.get('/events', sse({ keepalive: false }), (_req: Request, res: Response) => {
      res.sse.send('ok');
      res.sse.close();
    });
    app.use((err: { code?: string }, _req: Request, _res: Response, next: (e: unknown) => void) => {
      codes.push(err.code);
      next(err);
    });
    const { url } = await serve(app);
    const refused = await fetch(`${url}/events`, { headers: { accept: 'application/json' } });
    expect(refused.status).toBe(406);
    expect(refused.headers.get('content-type')).not.toContain('text/event-stream');
    await refused.text();
    expect(codes).toEqual(['ERR_SSE_NOT_ACCEPTABLE']);
    const any = await rawGet(`${url}/events`, { accept: '*/*' });
    expect(any).toMatch(/^200\n/);
    expect(any).toContain('data: ok');
    const none = await new Promise<string>((resolve, reject) => {
      http
        .get(`${url}/events`, { agent: false }, (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => {
            body += c;
          });
          res.on('end', () => resolve(`${res.statusCode} ${res.headers['content-type']}\n${body}`));
        })
        .on('error', reject);
    });
    expect(none).toBe('200 text/event-stream; charset=utf-8\ndata: ok\n\n');
  });

  // compression() honours `Cache-Control: no-transform` (our default), so streams go out uncompressed;
  // an app that drops no-transform gets gzip, and each event must still be flushed through zlib at once.
  test.each([
    { name: 'default headers: sent identity', headers: undefined, encoding: null },
    { name: 'no-transform dropped: gzip', headers: { 'Cache-Control': 'no-cache' }, encoding: 'gzip' },
  ])(
    'behind compression() ($name): each event reaches the client before the next is sent',
    async ({ headers, encoding }) => {
      const app = express();
      app.use(compression());
      let stream: EventStream | undefined;
      let acks = 0;
      app.get('/events', sse({ keepalive: false, headers }), (_req: Request, res: Response) => {
        stream = res.sse;
        res.sse.send('event 1');
      });
      // The client proves it received event n by calling /ack; only then does the server send event n+1.
      app.post('/ack', (_req: Request, res: Response) => {
        acks++;
        stream?.send(`event ${acks + 1}`);
        res.sendStatus(204);
      });
      const { url } = await serve(app);
      const client = await connect(`${url}/events`, { 'accept-encoding': 'gzip' });
      expect(client.headers.get('content-encoding')).toBe(encoding);
      for (let n = 1; n <= 3; n++) {
        const events = await client.waitFor(n);
        expect(events[n - 1]?.data).toBe(`event ${n}`);
        expect(acks).toBe(n - 1);
        await (await fetch(`${url}/ack`, { method: 'POST' })).arrayBuffer();
      }
    },
  );

  test('refuse(res) answers 204 and stops an EventSource from reconnecting', async () => {
    const app = express();
    let requests = 0;
    app.get(
      '/job',
      (_req: Request, res: Response, next: () => void) => {
        requests++;
        // The job finished after the first connection: tell the client to stop for good.
        if (requests > 1) refuse(res);
        else next();
      },
      sse({ retry: 10, keepalive: false }),
      (_req: Request, res: Response) => {
        res.sse.send('done');
        res.sse.close();
      },
    );
    const { url } = await serve(app);
    const es = new EventSource(`${url}/job`);
    const messages: string[] = [];
    es.onmessage = (event) => messages.push(event.data);
    const code = await new Promise<number | undefined>((resolve) => {
      es.onerror = (event) => {
        if (es.readyState === EventSource.CLOSED) resolve(event.code);
      };
    });
    expect(code).toBe(204);
    expect(messages).toEqual(['done']);
    expect(requests).toBe(2);
    expect(es.readyState).toBe(EventSource.CLOSED);
  });

  test('frames leave through the socket as chunks Node would frame (res.write is not taken), UTF-8 intact', async () => {
    const hub = hubForTest();
    const app = express();
    app.get('/events', sse({ hub, topics: ['t'], keepalive: false }));
    let resWrites = 0;
    const write = http.ServerResponse.prototype.write;
    http.ServerResponse.prototype.write = function (this: http.ServerResponse, ...args: never[]) {
      resWrites++;
      return write.apply(this, args);
    } as typeof write;
    try {
      const { url } = await serve(app);
      const client = await connect(`${url}/events`);
      await until(() => hub.stats().streams === 1, 5000, 'the subscription');
      await hub.publish('t', 'héllo wörld ✓');
      await hub.publish('t', { big: 'x'.repeat(300_000) });
      const events = await client.waitFor(2);
      expect(events[0]?.data).toBe('héllo wörld ✓');
      expect(events[1]?.data.length).toBe(300_010);
      // fetch (undici) parses the chunked framing strictly: any error there would have failed the read.
      expect(resWrites).toBe(0);
    } finally {
      http.ServerResponse.prototype.write = write;
    }
  });

  test('after a stream written straight to the socket ends, the kept-alive connection serves the next request', async () => {
    const app = express();
    app.get('/events', sse({ keepalive: false }), (_req: Request, res: Response) => {
      res.sse.send('one');
      res.sse.send({ two: 'wörld' });
      setTimeout(() => res.sse.close(), 20);
    });
    app.get('/json', (_req: Request, res: Response) => {
      res.json({ ok: true });
    });
    const { url } = await serve(app);
    const { port } = new URL(url);
    const socket = net.connect(Number(port), '127.0.0.1');
    let raw = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      raw += chunk;
    });
    socket.write('GET /events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n');
    await until(() => raw.includes('\r\n0\r\n\r\n'), 5000, 'the stream to end with the last chunk');
    socket.write('GET /json HTTP/1.1\r\nHost: x\r\n\r\n');
    await until(() => raw.endsWith('{"ok":true}'), 5000, 'the second response on the same connection');
    socket.destroy();
    // The first response's body, de-chunked, is exactly the two events.
    const body = raw.slice(raw.indexOf('\r\n\r\n') + 4, raw.indexOf('\r\n0\r\n\r\n') + 2);
    let text = '';
    for (let at = 0; at < body.length; ) {
      const eol = body.indexOf('\r\n', at);
      const size = Number.parseInt(body.slice(at, eol), 16);
      text += body.slice(eol + 2, eol + 2 + size);
      at = eol + 2 + size + 2;
    }
    expect(Buffer.from(text, 'latin1').toString('utf8')).toBe('data: one\n\ndata: {"two":"wörld"}\n\n');
  });

  test('source: items are piped as events and the stream ends when the source does', async () => {
    const app = express();
    app.get(
      '/count',
      sse({
        keepalive: false,
        source: async function* () {
          for (let i = 1; i <= 3; i++) yield { n: i };
        },
        map: (item: { n: number }) => ({ data: item, event: 'count' }),
      }),
    );
    const res = await request(app).get('/count').buffer(true).parse(sseParser());
    expect(res.body).toEqual([1, 2, 3].map((n) => ({ type: 'count', data: `{"n":${n}}`, lastEventId: '' })));
  });

  test("source: the generator's finally runs when the client disconnects", async () => {
    const app = express();
    let finallyRan = false;
    let stream: EventStream | undefined;
    app.get(
      '/ticks',
      sse({
        keepalive: false,
        source: async function* (_req, s) {
          stream = s;
          try {
            for (let i = 1; ; i++) {
              yield `tick ${i}`;
              // Never more than the client has room for; parks here once it reads slowly.
              await new Promise((resolve) => setImmediate(resolve));
            }
          } finally {
            finallyRan = true;
          }
        },
      }),
    );
    const { url } = await serve(app);
    const client = await connect(`${url}/ticks`);
    await client.waitFor(3);
    client.close();
    await until(() => finallyRan, 5000, "the generator's finally");
    expect(stream?.isOpen).toBe(false);
  });
});
