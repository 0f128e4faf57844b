/**
 * `sse()`: translates an Express request/response into core's route, and the route's answer back:
 * refusals (406, 403, 503) go to `next(err)`, so Express's own error handling answers them; an open
 * stream becomes `res.sse` and `next()`; a request handed on under `negotiate: true` gets `next()`.
 */
import { connectNode, nodeRequestView, Route, type StreamGroup } from '@ssekit/core';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { SseMiddlewareOptions } from './options.js';
import { guardRoute } from './route.js';

/** The middleware `sse()` returns: an Express handler, plus the group of the streams it opens. */
export interface SseMiddleware extends RequestHandler {
  /**
   * The streams this middleware opens (the hub's group when a hub is given without an own
   * `maxConnections` or `group`): `middleware.group.closeAll({ retry })` on shutdown, `.size` for metrics.
   */
  readonly group: StreamGroup;
}

/**
 * Creates middleware that opens a Server-Sent Events stream as `res.sse` and calls `next()`:
 *
 * ```js
 * app.get('/events', sse(), (req, res) => res.sse.send({ hello: 'world' }));
 * app.get('/prices', sse({ hub, topics: ['prices'] })); // no handler needed
 * ```
 *
 * With a `hub`, the stream is subscribed to `topics` (resuming after the client's `Last-Event-ID`)
 * before `next()`. Refusals reach `next(err)` as an `SseError` with a `status` (406, 403, 503 +
 * `Retry-After`); faults are reported to `onError` and answered with a stream that asks the client
 * to come back (see docs/errors.md).
 *
 * @throws {SseError} `ERR_SSE_INVALID_OPTION` for a bad or unknown option — here, once, not per request.
 */
export function sse<T = unknown>(options: SseMiddlewareOptions<T> = {}): SseMiddleware {
  const { onError, ...rest } = options;
  const route = new Route<Request>(
    typeof onError !== 'function'
      ? { ...rest, onError }
      : { ...rest, onError: (error, req) => onError(error, req, req.res as Response) },
    { where: 'sse()', passNotAcceptable: true, report: reportToConsole },
  );
  const middleware = (req: Request, res: Response, next: NextFunction): void => {
    const http = nodeRequestView(req, (type) => typeof req.accepts !== 'function' || req.accepts(type) !== false);
    route
      .handle(req, http, () => connectNode(req, res))
      .then((outcome) => {
        if (outcome.kind === 'pass') next();
        else if (outcome.kind === 'refused' || outcome.kind === 'failed') next(outcome.error);
        else if (outcome.stream.isOpen) {
          res.sse = outcome.stream;
          guardRoute(req, middleware, outcome.stream, route);
          next();
        }
      }, unexpected);
  };
  return Object.assign(middleware, { group: route.group as StreamGroup }) as SseMiddleware;
}

function reportToConsole(error: unknown, req: Request): void {
  console.error(`[ssekit] ${req.method} ${req.originalUrl ?? req.url}:`, error);
}

/** Last resort for a throw in our own continuation: logged, never an unhandled rejection. */
function unexpected(error: unknown): void {
  console.error('[ssekit] unexpected error in sse():', error);
}
