/**
 * Keeping Express from answering twice once a stream is open.
 *
 * After `sse()` has opened the stream and called `next()`, Express still owns the request: a later
 * handler that throws, rejects (Express 5) or calls `next(err)` sends the error down the route to the
 * app's error handlers and then to finalhandler, which — headers being sent — destroys the socket. A
 * handler-less `sse({ hub, topics })` at the end of its route falls through to later routes too (a
 * catch-all 404 would try to answer a second time).
 *
 * Errors and fall-through travel along the route's own stack first, so on the first stream a route
 * opens we append two layers to that route, for the same method as the `sse()` layer:
 * - `sseEnd` (a request layer): when the request holds a stream, the chain stops here;
 * - `sseErrors` (an error layer): when the request holds a stream, the error is reported and the stream
 *   ends; the app's error handlers never see it. Otherwise both pass on untouched.
 * Express 4's and Express 5's routes both dispatch by index over `route.stack`, so layers appended
 * while a request is in the route are reached by that very request.
 */
import type { EventStream, Route as SseRoute } from '@ssekit/core';
import type { NextFunction, Request, Response } from 'express';

interface RouteLayer {
  handle: unknown;
  method?: string | undefined;
}

interface Route {
  stack: RouteLayer[];
  all(...handlers: unknown[]): unknown;
  [method: string]: unknown;
}

const guarded = new WeakSet<object>();
/** The core route of the middleware that opened each stream: it reports the stream's errors. */
const routes = new WeakMap<EventStream, SseRoute<Request>>();

/**
 * Appends the two guard layers to the route `middleware` sits in, once per route. Does nothing when
 * the middleware is not a layer of `req.route` (mounted with `app.use()`, or wrapped in another
 * function): there, errors after open follow Express's usual path.
 */
export function guardRoute(req: Request, middleware: unknown, stream: EventStream, sseRoute: SseRoute<Request>): void {
  routes.set(stream, sseRoute);
  const route = (req as { route?: Route }).route;
  if (route === undefined || route === null || guarded.has(route) || !Array.isArray(route.stack)) return;
  const own = route.stack.find((layer) => layer.handle === middleware);
  // `req.route` can be a route that ran earlier and handed over with next(): not ours.
  if (own === undefined) return;
  guarded.add(route);
  const add = own.method === undefined ? route.all : route[own.method];
  if (typeof add !== 'function') return;
  // Same method as the sse() layer, so the route's set of methods (its 405/OPTIONS answers) is unchanged.
  add.call(route, sseEnd, sseErrors);
}

function sseEnd(_req: Request, res: Response, next: NextFunction): void {
  if (res.sse === undefined) next();
}

function sseErrors(error: unknown, req: Request, res: Response, next: NextFunction): void {
  const stream = res.sse as EventStream | undefined;
  if (stream === undefined) {
    next(error);
    return;
  }
  routes.get(stream)?.report(error, req);
  stream.close();
}
