import { createHub, KeepaliveScheduler, StreamGroup } from '@ssekit/core';
import { type SseMiddlewareOptions, sse } from '@ssekit/express';
import express from 'express';
import request from 'supertest';
import { afterAll, describe, expect, test } from 'vitest';

const hub = createHub();
afterAll(() => hub.close());

describe('sse() validates its options once, when it is created', () => {
  const bad: [string, unknown][] = [
    ['options not an object', 'fast'],
    ['keepalive 0', { keepalive: 0 }],
    ['keepalive true', { keepalive: true }],
    ['sendTimeout negative', { sendTimeout: -1 }],
    ['maxAge NaN', { maxAge: Number.NaN }],
    ['highWaterMark Infinity', { highWaterMark: Number.POSITIVE_INFINITY }],
    ['maxLastEventIdLength 0', { maxLastEventIdLength: 0 }],
    ['overflow unknown', { overflow: 'block' }],
    ['retry fractional', { retry: 1.5 }],
    ['retry negative', { retry: -1 }],
    ['status 100', { status: 100 }],
    ['status 600', { status: 600 }],
    ['header value with CRLF', { headers: { 'X-A': 'a\r\nSet-Cookie: x' } }],
    ['header name invalid', { headers: { 'bad name': 'x' } }],
    ['serialize not a function', { serialize: 'json' }],
    ['onError not a function', { onError: true }],
    ['source not a function', { source: [1, 2, 3] }],
    ['negotiate not a boolean', { negotiate: 'yes' }],
    ['maxConnections negative', { maxConnections: -1 }],
    ['retryAfter fractional', { maxConnections: 1, retryAfter: 1.5 }],
    ['group and maxConnections', { group: new StreamGroup(), maxConnections: 3 }],
    ['group not a group', { group: {} }],
    ['scheduler not a scheduler', { scheduler: {} }],
    ['pipe not an object', { pipe: 'map' }],
    ['hub not a hub', { hub: {}, topics: ['a'] }],
    ['topics without a hub', { topics: ['a'] }],
    ['filter without a hub', { filter: () => () => true }],
    ['topics empty', { hub, topics: [] }],
    ['topics with an empty name', { hub, topics: ['a', ''] }],
    ['topics not strings', { hub, topics: [1] }],
  ];
  test.each(bad)('%s → ERR_SSE_INVALID_OPTION', (_name, options) => {
    expect(() => sse(options as SseMiddlewareOptions)).toThrow(
      expect.objectContaining({ name: 'SseError', code: 'ERR_SSE_INVALID_OPTION' }),
    );
  });

  test('valid options are accepted', () => {
    const scheduler = new KeepaliveScheduler();
    expect(() =>
      sse({
        keepalive: false,
        retry: 0,
        status: 200,
        headers: { 'X-Trace': 'on', Vary: ['Accept'] },
        overflow: 'drop',
        highWaterMark: 1024,
        sendTimeout: 1000,
        maxAge: 60_000,
        scheduler,
        hub,
        topics: (req) => [String(req.query.topic ?? 'a')],
        filter: () => () => true,
        negotiate: true,
        maxConnections: 10,
        retryAfter: 2,
        onError: () => {},
        source: () => [1],
        pipe: { end: true },
      }),
    ).not.toThrow();
    expect(() => sse()).not.toThrow();
  });

  test('topics returned at request time that are not topics give a 500 before any stream byte', async () => {
    const app = express();
    app.get('/t', sse({ hub, topics: () => [''] }));
    const res = await request(app).get('/t').set('Accept', 'text/event-stream');
    expect(res.status).toBe(500);
    expect(res.headers['content-type']).not.toContain('text/event-stream');
  });
});
