/**
 * `sse()`: translates an Express request/response into a core event stream, and nothing more.
 * Everything before the first byte that can go wrong (406, 403, 503, headers already sent) goes to
 * `next(err)`, so Express's own error handling answers; everything after it goes to `onError`.
 */
import {
  createEventStream,
  type EventStream,
  type EventStreamOptions,
  forbidden,
  type Hub,
  type HubMessage,
  type Source,
  SseError,
  StreamGroup,
} from '@ssekit/core';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { checkOptions, type SseMiddlewareOptions, type TopicsResult, topicsProblem } from './options.js';
import { guardRoute, type Reporter, setReporter } from './route.js';

/** The middleware `sse()` returns: an Express handler, plus the group of the streams it opened. */
export interface SseMiddleware extends RequestHandler {
  /**
   * The streams this middleware opened (the hub's group when a hub is given without an own
   * `maxConnections`): `middleware.group.closeAll({ retry })` on shutdown, `.size` for metrics.
   */
  readonly group: StreamGroup;
}

const EVENT_STREAM = 'text/event-stream';

/**
 * Creates middleware that opens a Server-Sent Events stream as `res.sse` and calls `next()`:
 *
 * ```js
 * app.get('/events', sse(), (req, res) => res.sse.send({ hello: 'world' }));
 * app.get('/prices', sse({ hub, topics: ['prices'] })); // no handler needed
 * ```
 *
 * With a `hub`, the stream is subscribed to `topics` (resuming after the client's `Last-Event-ID`)
 * before `next()`. Refusals before the stream opens reach `next(err)` as an {@link SseError} with a
 * `status` (406, 403, 503 + `Retry-After`) that Express's error handling answers with.
 *
 * @throws {SseError} `ERR_SSE_INVALID_OPTION` for a bad option — here, once, not per request.
 */
export function sse(options: SseMiddlewareOptions = {}): SseMiddleware {
  checkOptions(options);
  const {
    hub,
    topics,
    filter,
    negotiate = false,
    maxConnections,
    retryAfter,
    source,
    pipe,
    onError,
    ...streamOptions
  } = options;
  // An own group when the middleware has its own limit (or no hub); else the hub's, whose limit applies.
  const ownGroup =
    streamOptions.group ??
    (maxConnections !== undefined || hub === undefined ? new StreamGroup({ maxConnections, retryAfter }) : undefined);
  const group: StreamGroup = ownGroup ?? (hub as Hub).group;
  // With both an own limit and a hub, the hub's limit is checked too.
  const hubGroup = ownGroup !== undefined && hub !== undefined ? (hub as Hub).group : undefined;
  const report = onError === undefined ? reportOncePerStream : guardReporter(onError);
  // Built once: every stream of this middleware shares the same options object.
  const coreOptions: EventStreamOptions = {
    ...streamOptions,
    group,
    onError: (error, stream) => report(error, stream.request as Request, stream.response as Response),
  };
  const staticTopics = typeof topics === 'function' ? undefined : (topics as TopicsResult | undefined);
  const topicsOf = typeof topics === 'function' ? topics : undefined;

  const open = (req: Request, res: Response, next: NextFunction, wanted: TopicsResult | undefined): void => {
    if (wanted === false || wanted instanceof Error) {
      next(forbidden(wanted));
      return;
    }
    if (wanted !== undefined) {
      const bad = topicsProblem(wanted);
      if (bad !== undefined) {
        next(new SseError('ERR_SSE_INVALID_TOPIC', `the topics option returned bad topics: ${bad}`, { status: 500 }));
        return;
      }
    }
    let stream: EventStream;
    let messageFilter: ((message: HubMessage) => boolean) | undefined;
    try {
      // The filter is the app's code: if it throws, that is still an answer before the stream.
      messageFilter = filter?.(req);
      hubGroup?.admit();
      stream = createEventStream(req, res, coreOptions);
    } catch (error) {
      next(error);
      return;
    }
    res.sse = stream;
    setReporter(stream, report);
    guardRoute(req, middleware);
    if (hub === undefined || wanted === undefined) {
      start(req, res, next, stream);
      return;
    }
    hub
      .subscribe(stream, wanted, { filter: messageFilter })
      .then(
        () => start(req, res, next, stream),
        (error: unknown) => fail(error, req, res, stream),
      )
      .catch(unexpected);
  };

  const start = (req: Request, res: Response, next: NextFunction, stream: EventStream): void => {
    // The client left (or the hub closed) while we subscribed: nobody to run handlers for.
    if (!stream.isOpen) return;
    if (source !== undefined) {
      let items: Source<unknown> | Promise<Source<unknown>>;
      try {
        items = source(req, stream);
      } catch (error) {
        fail(error, req, res, stream);
        return;
      }
      // pipe() never rejects: a failing source ends this stream and reaches onError.
      Promise.resolve(items)
        .then(
          (resolved) => stream.pipe(resolved, pipe),
          (error: unknown) => fail(error, req, res, stream),
        )
        .catch(unexpected);
    }
    next();
  };

  const fail = (error: unknown, req: Request, res: Response, stream: EventStream): void => {
    report(error, req, res);
    stream.close();
  };

  const middleware = (req: Request, res: Response, next: NextFunction): void => {
    // A client that refuses text/event-stream: another handler may answer (negotiate), else 406.
    if (typeof req.accepts === 'function' && !req.accepts(EVENT_STREAM)) {
      if (negotiate) next();
      else
        next(
          new SseError('ERR_SSE_NOT_ACCEPTABLE', `this resource is only available as ${EVENT_STREAM}`, { status: 406 }),
        );
      return;
    }
    if (topicsOf === undefined) {
      open(req, res, next, staticTopics);
      return;
    }
    let wanted: TopicsResult | Promise<TopicsResult>;
    try {
      wanted = topicsOf(req);
    } catch (error) {
      next(forbidden(error));
      return;
    }
    if (isPromiseLike(wanted)) {
      Promise.resolve(wanted)
        .then(
          (resolved) => open(req, res, next, resolved),
          (error: unknown) => next(forbidden(error)),
        )
        .catch(unexpected);
    } else {
      open(req, res, next, wanted);
    }
  };
  return Object.assign(middleware, { group }) as SseMiddleware;
}

const reported = new WeakSet<object>();

/** The default `onError`: one line per stream (a stream that keeps failing does not flood the log). */
function reportOncePerStream(error: unknown, req: Request, res: Response): void {
  if (reported.has(res)) return;
  reported.add(res);
  console.error(`[ssekit] ${req.method} ${req.originalUrl ?? req.url}: error after the stream opened:`, error);
}

/** The user's `onError`, made safe: if it throws, that is logged, never thrown into Express or the socket. */
function guardReporter(onError: NonNullable<SseMiddlewareOptions['onError']>): Reporter {
  return (error, req, res) => {
    try {
      onError(error, req, res);
    } catch (reportError) {
      console.error('[ssekit] onError threw:', reportError, 'while reporting:', error);
    }
  };
}

/** Last resort for a throw in our own promise continuations: logged, never an unhandled rejection. */
function unexpected(error: unknown): void {
  console.error('[ssekit] unexpected error in sse():', error);
}

function isPromiseLike<T>(value: unknown): value is PromiseLike<T> {
  return typeof (value as PromiseLike<T> | null)?.then === 'function';
}
