/**
 * The event stream over `node:http2` (compat request/response), cleartext (h2c) and TLS with a
 * self-signed certificate, read by the `node:http2` client: frames, headers (no `Connection`),
 * disconnect detection, heartbeats, and overflow that ends one h2 stream but not the session.
 */
import http2 from 'node:http2';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { createEventStream, type EventStream, type EventStreamOptions, KeepaliveScheduler } from '@ssekit/core';
import { EventStreamParser, type ParsedStream } from '@ssekit/core/testing';
import selfsigned from 'selfsigned';
import { afterEach, beforeAll, describe, expect, test } from 'vitest';

type Handler = (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void;

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

let pems: { private: string; cert: string };
beforeAll(() => {
  pems = selfsigned.generate([{ name: 'commonName', value: 'localhost' }], {
    days: 1,
    keySize: 2048,
    algorithm: 'sha256',
    extensions: [{ name: 'subjectAltName', altNames: [{ type: 7, ip: '127.0.0.1' }] }],
  });
});

async function until(condition: () => boolean, what: string, timeout = 5000): Promise<void> {
  const start = Date.now();
  while (!condition()) {
    if (Date.now() - start > timeout) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const variants = {
  h2c: async (handler: Handler) => {
    const server = http2.createServer(handler);
    return listen(server, 'http');
  },
  'h2 over TLS': async (handler: Handler) => {
    const server = http2.createSecureServer({ key: pems.private, cert: pems.cert, allowHTTP1: true }, handler);
    return listen(server, 'https');
  },
};

async function listen(server: http2.Http2Server | http2.Http2SecureServer, scheme: string) {
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (session) => {
    sessions.add(session);
    session.on('close', () => sessions.delete(session));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        for (const session of sessions) session.destroy();
        server.close(() => resolve());
      }),
  );
  return { port, origin: `${scheme}://127.0.0.1:${port}` };
}

function connect(origin: string): http2.ClientHttp2Session {
  const session = http2.connect(origin, origin.startsWith('https') ? { ca: pems.cert } : {});
  session.on('error', () => {});
  cleanups.push(() => session.destroy());
  return session;
}

/** Opens an h2 stream and parses what arrives. */
function request(session: http2.ClientHttp2Session, path = '/') {
  const req = session.request({ ':path': path, accept: 'text/event-stream' });
  req.on('error', () => {});
  const parser = new EventStreamParser();
  let ended = false;
  const response = new Promise<http2.IncomingHttpHeaders>((resolve) => req.on('response', resolve));
  req.on('data', (chunk: Buffer) => parser.feed(chunk));
  req.on('end', () => {
    ended = true;
  });
  return {
    req,
    response,
    result: parser.result as ParsedStream,
    get ended() {
      return ended;
    },
  };
}

for (const [name, start] of Object.entries(variants)) {
  describe(name, () => {
    test('headers without Connection, then frames in order', async () => {
      // The compat API drops a Connection header with an UnsupportedWarning: none may be emitted.
      const warnings: Error[] = [];
      const onWarning = (warning: Error) => warnings.push(warning);
      process.on('warning', onWarning);
      cleanups.push(() => process.off('warning', onWarning));
      const { origin } = await start((req, res) => {
        res.setHeader('access-control-allow-origin', '*');
        const stream = createEventStream(req, res, { keepalive: false, retry: 2000, headers: { 'x-trace': 't' } });
        // Headers first, alone: the client must see them before any event.
        setTimeout(() => {
          for (let i = 0; i < 5; i++) stream.send({ i }, { id: String(i), event: 'tick' });
          stream.send('multi\nline');
          stream.close();
        }, 50);
      });
      const session = connect(origin);
      const client = request(session);
      const headers = await client.response;
      expect(client.result.events).toEqual([]);
      expect(headers[':status']).toBe(200);
      expect(headers['content-type']).toBe('text/event-stream; charset=utf-8');
      expect(headers['cache-control']).toBe('no-cache, no-transform');
      expect(headers['x-accel-buffering']).toBe('no');
      expect(headers['access-control-allow-origin']).toBe('*');
      expect(headers['x-trace']).toBe('t');
      expect(headers.connection).toBeUndefined();
      expect(headers['keep-alive']).toBeUndefined();
      await until(() => client.ended, 'the end of the stream');
      expect(client.result.retry).toBe(2000);
      expect(client.result.events).toEqual([
        ...Array.from({ length: 5 }, (_, i) => ({ type: 'tick', data: `{"i":${i}}`, lastEventId: String(i) })),
        { type: 'message', data: 'multi\nline', lastEventId: '4' },
      ]);
      expect(warnings.filter((w) => /connection header/i.test(w.message))).toEqual([]);
    });

    test('many streams on one session each get their own events', async () => {
      const { origin } = await start((req, res) => {
        const stream = createEventStream(req, res, { keepalive: false });
        stream.send(req.url);
        stream.close();
      });
      const session = connect(origin);
      const clients = Array.from({ length: 10 }, (_, i) => request(session, `/s${i}`));
      await until(() => clients.every((c) => c.ended), 'ten streams');
      clients.forEach((c, i) => {
        expect(c.result.events.map((e) => e.data)).toEqual([`/s${i}`]);
      });
    });

    test('heartbeats arrive on an idle stream', async () => {
      const scheduler = new KeepaliveScheduler();
      cleanups.push(() => scheduler.stop());
      const { origin } = await start((req, res) => {
        createEventStream(req, res, { keepalive: 60, scheduler });
      });
      const client = request(connect(origin));
      await client.response;
      await until(() => client.result.comments.length >= 3, 'three heartbeats', 3000);
      expect(client.result.events).toEqual([]);
    });

    for (const how of ['the client cancels the h2 stream', 'the client closes the session'] as const) {
      test(`${how}: signal aborts, onClose runs, the scheduler drops the stream within 1 s`, async () => {
        const scheduler = new KeepaliveScheduler();
        cleanups.push(() => scheduler.stop());
        let stream: EventStream | undefined;
        const calls: string[] = [];
        const { origin } = await start((req, res) => {
          stream = createEventStream(req, res, { keepalive: 10_000, scheduler });
          stream.signal.addEventListener('abort', () => calls.push('abort'));
          stream.onClose(() => calls.push('onClose'));
          void stream.closed.then(() => calls.push('closed'));
          stream.send('open');
        });
        const session = connect(origin);
        const client = request(session);
        await until(() => client.result.events.length === 1, 'the first event');
        expect(scheduler.size).toBe(1);
        const began = Date.now();
        if (how === 'the client cancels the h2 stream') client.req.close(http2.constants.NGHTTP2_CANCEL);
        else session.destroy();
        await until(() => calls.length === 3, 'the close', 1000);
        expect(Date.now() - began).toBeLessThan(1000);
        expect(calls).toEqual(['abort', 'onClose', 'closed']);
        expect(stream?.isOpen).toBe(false);
        expect(stream?.signal.aborted).toBe(true);
        expect(scheduler.size).toBe(0);
        expect(stream?.send('late')).toBe(false);
      });
    }

    test('a stream that does not read is closed alone; the session and its other stream go on', async () => {
      const overflows: string[] = [];
      const streams = new Map<string, EventStream>();
      const options: EventStreamOptions = {
        keepalive: false,
        highWaterMark: 16 * 1024,
        onOverflow: (info) => overflows.push(info.policy),
      };
      const { origin } = await start((req, res) => {
        const stream = createEventStream(req, res, options);
        streams.set(req.url as string, stream);
        const payload = 'x'.repeat(1000);
        const pump = () => {
          if (!stream.isOpen) return;
          for (let i = 0; i < 16; i++) stream.send(payload);
          // The reading stream is paced by ready(); the stalled one is pushed until the policy acts.
          if (req.url === '/reader') void stream.ready().then((open) => open && setTimeout(pump, 5));
          else setImmediate(pump);
        };
        pump();
      });
      const session = connect(origin);
      const stalled = request(session, '/stalled');
      stalled.req.pause();
      const reader = request(session, '/reader');
      await until(() => streams.get('/stalled')?.isOpen === false, 'the stalled stream to close', 10_000);
      expect(streams.get('/stalled')?.closedForSlowness).toBe(true);
      expect(overflows).toEqual(['close']);
      const before = reader.result.events.length;
      await until(() => reader.result.events.length > before + 50, 'the reader to keep receiving');
      expect(streams.get('/reader')?.isOpen).toBe(true);
      expect(session.closed || session.destroyed).toBe(false);
    });
  });
}

test('the same TLS server answers HTTP/1.1 clients (allowHTTP1) with Connection: keep-alive', async () => {
  const versions: string[] = [];
  const { port } = await variants['h2 over TLS']((req, res) => {
    versions.push(req.httpVersion);
    const stream = createEventStream(req, res, { keepalive: false });
    stream.send('over 1.1');
    stream.close();
  });
  const { headers, body } = await new Promise<{ headers: Record<string, unknown>; body: string }>((resolve, reject) => {
    const req = https.get({ host: '127.0.0.1', port, path: '/', ca: pems.cert }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
      });
      res.on('end', () => resolve({ headers: res.headers, body }));
    });
    req.on('error', reject);
  });
  expect(versions).toEqual(['1.1']);
  expect(headers.connection).toBe('keep-alive');
  expect(headers['content-type']).toBe('text/event-stream; charset=utf-8');
  expect(body).toBe('data: over 1.1\n\n');
});
