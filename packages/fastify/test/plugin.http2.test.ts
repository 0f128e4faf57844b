/**
 * The plugin on Fastify's HTTP/2 server (`http2: true`), over TLS with a certificate generated here
 * and over cleartext (h2c), read with the `node:http2` client: frames, headers (no `Connection`),
 * headers from hooks, keepalive, disconnect detection, hub delivery and shutdown.
 */
import http2 from 'node:http2';
import { createHub, type EventStream } from '@ssekit/core';
import { EventStreamParser, type ParsedEvent } from '@ssekit/core/testing';
import ssekit from '@ssekit/fastify';
import type { FastifyInstance } from 'fastify';
import selfsigned from 'selfsigned';
import { beforeAll, describe, expect, test } from 'vitest';
import { createApp, deferred, onCleanup, until, within } from './helpers.js';

let tls: { key: string; cert: string };
beforeAll(() => {
  const pems = selfsigned.generate([{ name: 'commonName', value: 'localhost' }], {
    days: 1,
    keySize: 2048,
    extensions: [{ name: 'subjectAltName', altNames: [{ type: 7, ip: '127.0.0.1' }] }],
  });
  tls = { key: pems.private, cert: pems.cert };
});

interface H2Stream {
  headers: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader;
  events: ParsedEvent[];
  parser: EventStreamParser;
  ended: Promise<void>;
  request: http2.ClientHttp2Stream;
  session: http2.ClientHttp2Session;
}

async function h2get(base: string, path: string, secure: boolean): Promise<H2Stream> {
  const session = http2.connect(base, secure ? { ca: tls.cert } : {});
  onCleanup(
    () =>
      new Promise<void>((resolve) => {
        if (session.closed) resolve();
        else session.close(() => resolve());
        session.destroy();
      }),
  );
  session.on('error', () => {});
  const request = session.request({ ':path': path, accept: 'text/event-stream' });
  request.on('error', () => {});
  const events: ParsedEvent[] = [];
  const parser = new EventStreamParser((event) => events.push(event));
  const headers = await within(
    new Promise<H2Stream['headers']>((resolve, reject) => {
      request.once('response', resolve);
      request.once('error', reject);
    }),
    5000,
    'the response headers',
  );
  const ended = new Promise<void>((resolve) => request.once('end', resolve));
  request.on('data', (chunk: Buffer) => parser.feed(chunk));
  return { headers, events, parser, ended, request, session };
}

async function start(secure: boolean): Promise<{ app: FastifyInstance; base: string; streams: EventStream[] }> {
  const { app } = createApp(secure ? { http2: true, https: tls } : { http2: true });
  await app.register(ssekit, { keepalive: 50 });
  const streams: EventStream[] = [];
  app.addHook('onRequest', async (_request, reply) => {
    reply.header('x-trace', 'abc');
    // Hop-by-hop headers some plugin set: forbidden on HTTP/2, so they must be left out, not crash.
    reply.header('connection', 'keep-alive');
    reply.header('keep-alive', 'timeout=5');
  });
  app.get('/events', (_request, reply) => {
    const stream = reply.sse();
    streams.push(stream);
    stream.send('hello', { event: 'greeting', id: '1' });
  });
  const address = await app.listen({ port: 0, host: '127.0.0.1' });
  return { app, base: address.replace('http://', secure ? 'https://' : 'http://'), streams };
}

describe.each([
  ['TLS', true],
  ['h2c', false],
])('HTTP/2 over %s', (_name, secure) => {
  test('frames and headers: 200, text/event-stream, no Connection, headers from hooks', async () => {
    const { base } = await start(secure);
    const client = await h2get(base, '/events', secure);
    expect(client.headers[':status']).toBe(200);
    expect(client.headers['content-type']).toBe('text/event-stream; charset=utf-8');
    expect(client.headers['cache-control']).toBe('no-cache, no-transform');
    expect(client.headers['x-accel-buffering']).toBe('no');
    expect(client.headers['x-trace']).toBe('abc');
    expect(client.headers.connection).toBeUndefined();
    await until(() => client.events.length >= 1, 'the first event');
    expect(client.events[0]).toEqual({ type: 'greeting', data: 'hello', lastEventId: '1' });
  });

  test('an idle stream gets heartbeats', async () => {
    const { base } = await start(secure);
    const client = await h2get(base, '/events', secure);
    await until(() => client.parser.result.comments.length >= 2, 'two heartbeats');
  });

  test('the client resetting its stream aborts signal within 1 s; the session stays usable', async () => {
    const { base, streams } = await start(secure);
    const client = await h2get(base, '/events', secure);
    await until(() => client.events.length >= 1, 'the first event');
    const aborted = deferred<number>();
    streams[0]?.signal.addEventListener('abort', () => aborted.resolve(Date.now()));
    const leftAt = Date.now();
    client.request.close(http2.constants.NGHTTP2_CANCEL);
    expect((await within(aborted.promise, 1000, 'signal abort')) - leftAt).toBeLessThan(1000);
    expect(streams[0]?.isOpen).toBe(false);
    expect(streams[0]?.send('late')).toBe(false);

    // Another stream on the same session still works.
    const again = client.session.request({ ':path': '/events', accept: 'text/event-stream' });
    const parser = new EventStreamParser();
    again.on('data', (chunk: Buffer) => parser.feed(chunk));
    await until(() => parser.result.events.length >= 1, 'an event on the second stream');
    again.close();
  });

  test('hub delivery, and app.close() ends the streams with a retry hint', async () => {
    const { app } = createApp(secure ? { http2: true, https: tls } : { http2: true });
    await app.register(ssekit, { keepalive: false });
    const hub = createHub();
    onCleanup(() => hub.close());
    app.get('/hub', (_request, reply) => {
      reply.sse({ hub, topics: 'h2' });
    });
    const address = await app.listen({ port: 0, host: '127.0.0.1' });
    const base = address.replace('http://', secure ? 'https://' : 'http://');

    const client = await h2get(base, '/hub', secure);
    await until(() => hub.stats().streams === 1, 'the subscription');
    await hub.publish('h2', { n: 1 });
    await until(() => client.events.length === 1, 'the published event');
    expect(JSON.parse(client.events[0]?.data as string)).toEqual({ n: 1 });

    await within(app.close(), 5000, 'app.close()');
    await within(client.ended, 2000, 'the stream end');
    expect(client.parser.result.retry).toBe(1000);
  });
});
