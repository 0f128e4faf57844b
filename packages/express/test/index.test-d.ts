// Types: res.sse is typed in every Express handler by declaration merging, and sse() fits Express's
// overloads with and without a handler.
import { createHub, type EventStream, type HubMessage } from '@ssekit/core';
import express, { type Request, type Response } from 'express';
import { expectTypeOf, test } from 'vitest';
import { type SseMiddleware, type SseMiddlewareOptions, sse } from '../src/index.js';

test('res.sse is the core EventStream in handlers behind sse()', () => {
  const app = express();
  app.get('/events', sse(), (_req, res) => {
    expectTypeOf(res.sse).toEqualTypeOf<EventStream>();
    expectTypeOf(res.sse.send).parameters.toMatchTypeOf<[unknown, { event?: string; id?: string }?]>();
    res.sse.send({ hello: 'world' }, { event: 'greet', id: '1' });
  });
  expectTypeOf<Response['sse']>().toEqualTypeOf<EventStream>();
});

test('sse() options and result', () => {
  const hub = createHub<{ prices: { value: number } }>();
  const middleware = sse({
    hub,
    topics: (req: Request) => (req.query.all ? ['prices'] : false),
    filter: (message, req) => {
      expectTypeOf(message).toEqualTypeOf<HubMessage>();
      expectTypeOf(req).toEqualTypeOf<Request>();
      return req.params.id !== undefined;
    },
    negotiate: true,
    onError: (error, req, res) => {
      expectTypeOf(error).toBeUnknown();
      expectTypeOf(req).toEqualTypeOf<Request>();
      expectTypeOf(res).toEqualTypeOf<Response>();
    },
  });
  expectTypeOf(middleware).toEqualTypeOf<SseMiddleware>();
  express().get('/prices', middleware);
  // @ts-expect-error topics must be strings, false or an Error
  sse({ hub, topics: () => 42 });
  // @ts-expect-error keepalive is ms or false
  const bad: SseMiddlewareOptions = { keepalive: 'often' };
  void bad;
});
