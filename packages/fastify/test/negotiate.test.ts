/**
 * Negotiation over the wire: `request.acceptsEventStream()` (through `@fastify/accepts`), one route
 * serving JSON to `fetch()` and a stream to `EventSource`, and 406 for a request that refuses
 * `text/event-stream` on a route with nothing else to offer.
 */
import accepts from '@fastify/accepts';
import { collectEvents } from '@ssekit/core/testing';
import ssekit from '@ssekit/fastify';
import { EventSource } from 'eventsource';
import { describe, expect, test } from 'vitest';
import { createApp, listen, onCleanup, open } from './helpers.js';

describe('request.acceptsEventStream()', () => {
  test('follows the Accept header, with and without alternatives', async () => {
    const { app } = createApp();
    await app.register(ssekit);
    app.get('/any', async (request) => ({ stream: request.acceptsEventStream() }));
    app.get('/or-json', async (request) => ({ stream: request.acceptsEventStream(['application/json']) }));

    const ask = async (path: string, accept?: string): Promise<boolean> => {
      const response = await app.inject({ method: 'GET', url: path, headers: accept ? { accept } : {} });
      return (response.json() as { stream: boolean }).stream;
    };
    // Can this client take a stream at all?
    expect(await ask('/any', 'text/event-stream')).toBe(true);
    expect(await ask('/any')).toBe(true);
    expect(await ask('/any', '*/*')).toBe(true);
    expect(await ask('/any', 'text/*')).toBe(true);
    expect(await ask('/any', 'application/json')).toBe(false);
    expect(await ask('/any', 'text/event-stream;q=0')).toBe(false);
    // Does the stream win over JSON? Ties go to JSON.
    expect(await ask('/or-json', 'text/event-stream')).toBe(true);
    expect(await ask('/or-json')).toBe(false);
    expect(await ask('/or-json', '*/*')).toBe(false);
    expect(await ask('/or-json', 'application/json')).toBe(false);
    expect(await ask('/or-json', 'application/json;q=0.5, text/event-stream')).toBe(true);
    expect(await ask('/or-json', 'application/json, text/event-stream;q=0.5')).toBe(false);
  });

  test('one route serves a JSON snapshot to fetch() and a stream to EventSource', async () => {
    const { app } = createApp();
    await app.register(ssekit, { keepalive: false });
    app.get('/score', (request, reply) => {
      if (!request.acceptsEventStream(['application/json'])) return reply.send({ home: 1, away: 0 });
      const stream = reply.sse();
      stream.send({ home: 1, away: 0 }, { event: 'score' });
      return reply;
    });
    const base = await listen(app);

    const snapshot = await fetch(`${base}/score`);
    expect(snapshot.status).toBe(200);
    expect(snapshot.headers.get('content-type')).toMatch(/^application\/json/);
    expect(await snapshot.json()).toEqual({ home: 1, away: 0 });

    const es = new EventSource(`${base}/score`);
    onCleanup(() => es.close());
    const event = await new Promise<MessageEvent>((resolve, reject) => {
      es.addEventListener('score', resolve);
      es.onerror = () => reject(new Error('EventSource failed'));
    });
    expect(JSON.parse(event.data)).toEqual({ home: 1, away: 0 });

    const injected = await collectEvents(app, { path: '/score', count: 1 });
    expect(injected.events[0]).toEqual({ type: 'score', data: '{"home":1,"away":0}', lastEventId: '' });
  });
});

describe('406', () => {
  test('reply.sse() answers 406 to a request that refuses text/event-stream, before any stream bytes', async () => {
    const { app } = createApp();
    await app.register(ssekit);
    app.get('/events', (_request, reply) => {
      reply.sse().send('x');
    });
    app.get('/lenient', (_request, reply) => {
      reply.sse({ negotiate: true }).send('x');
    });
    const base = await listen(app);

    const refused = await fetch(`${base}/events`, { headers: { accept: 'application/json' } });
    expect(refused.status).toBe(406);
    expect(refused.headers.get('content-type')).toMatch(/^application\/json/);
    expect(await refused.json()).toMatchObject({ code: 'ERR_SSE_NOT_ACCEPTABLE' });

    // fetch()'s default */* and no Accept at all are fine.
    const plain = await open(`${base}/events`, { accept: '*/*' });
    expect(plain.response.status).toBe(200);
    expect((await plain.waitForEvents(1))[0]?.data).toBe('x');

    const lenient = await open(`${base}/lenient`, { accept: 'application/json' });
    expect(lenient.response.status).toBe(200);
    expect((await lenient.waitForEvents(1))[0]?.data).toBe('x');
  });

  test('negotiate: true on the plugin leaves negotiation to the app on every route', async () => {
    const { app } = createApp();
    await app.register(ssekit, { negotiate: true });
    app.get('/events', (_request, reply) => {
      reply.sse().send('x');
    });
    const base = await listen(app);
    const client = await open(`${base}/events`, { accept: 'application/json' });
    expect(client.response.status).toBe(200);
    expect((await client.waitForEvents(1))[0]?.data).toBe('x');
  });

  test('an app that registered @fastify/accepts itself keeps it (no duplicate decorator)', async () => {
    const { app } = createApp();
    await app.register(accepts);
    await app.register(ssekit);
    app.get('/events', (request, reply) => {
      if (request.type(['json', 'text/event-stream']) === 'json') return reply.send({ json: true });
      reply.sse().send('x');
      return reply;
    });
    const base = await listen(app);
    expect(await (await fetch(`${base}/events`, { headers: { accept: 'application/json' } })).json()).toEqual({
      json: true,
    });
    const client = await open(`${base}/events`);
    expect((await client.waitForEvents(1))[0]?.data).toBe('x');
  });
});
