import { createHub, KeepaliveScheduler, StreamGroup } from '@ssekit/core';
import { type SseMiddlewareOptions, sse } from '@ssekit/express';
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
    ['map not a function', { map: 'x' }],
    ['an unknown option', { keepAlive: 5 }],
    ['a pipe object (the option is map)', { pipe: { map: () => ({ data: 1 }) } }],
    ['hub not a hub', { hub: {}, topics: ['a'] }],
    ['topics without a hub', { topics: ['a'] }],
    ['filter without a hub', { filter: () => true }],
    ['hub without topics', { hub }],
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
        filter: () => true,
        negotiate: true,
        maxConnections: 10,
        retryAfter: 2,
        onError: () => {},
        source: () => [1],
        map: (item: number) => ({ data: item }),
        faultRetry: 1000,
      }),
    ).not.toThrow();
    expect(() => sse()).not.toThrow();
  });

  test('an unknown option names the closest known one', () => {
    expect(() => sse({ keepAlive: 5 } as SseMiddlewareOptions)).toThrow(
      "sse(): unknown option 'keepAlive' — did you mean 'keepalive'?",
    );
    expect(() => sse({ hisotry: 5 } as SseMiddlewareOptions)).toThrow(/unknown option 'hisotry'/);
  });
});
