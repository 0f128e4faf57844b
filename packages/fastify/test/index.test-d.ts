/**
 * Compile-time contract of the module augmentation: `reply.sse()` overloads, option types, and
 * `request.acceptsEventStream()`.
 */
import { createHub, type EventStream } from '@ssekit/core';
import ssekit, { type SsekitFastifyOptions } from '@ssekit/fastify';
import Fastify from 'fastify';
import { expectTypeOf, test } from 'vitest';

test('reply.sse() and request.acceptsEventStream() are typed', () => {
  const app = Fastify();
  app.register(ssekit, { keepalive: 15_000, maxConnections: 100, closeRetry: 1000 });
  // @ts-expect-error keepalive is a number of ms or false
  app.register(ssekit, { keepalive: 'often' });
  expectTypeOf<SsekitFastifyOptions['closeRetry']>().toEqualTypeOf<number | false | undefined>();

  const hub = createHub<{ prices: { symbol: string; value: number } }>();
  app.get('/events', (request, reply) => {
    expectTypeOf(request.acceptsEventStream()).toEqualTypeOf<boolean>();
    expectTypeOf(request.acceptsEventStream(['application/json'])).toEqualTypeOf<boolean>();
    expectTypeOf(reply.sse()).toEqualTypeOf<EventStream>();
    expectTypeOf(reply.sse({ retry: 1000, negotiate: true })).toEqualTypeOf<EventStream>();
    expectTypeOf(
      reply.sse({ hub, topics: ['prices'], filter: (m, req) => m.topics.length > 0 && req.id !== '' }),
    ).toEqualTypeOf<EventStream>();
    expectTypeOf(reply.sse({ hub, topics: (req) => [String(req.id)] })).toEqualTypeOf<EventStream>();
    expectTypeOf(reply.sse({ hub, topics: async (req) => [String(req.id)] })).toEqualTypeOf<
      Promise<EventStream | undefined>
    >();
    expectTypeOf(app.ssekit.group.size).toEqualTypeOf<number>();

    async function* numbers() {
      yield 1;
    }
    reply.sse(numbers(), { map: (n) => ({ data: n * 2, id: String(n) }) });
    // @ts-expect-error map receives the source's items (numbers), not strings
    reply.sse(numbers(), { map: (s: string) => ({ data: s.toUpperCase() }) });
    // @ts-expect-error a hub needs topics
    reply.sse({ hub });
  });
});
