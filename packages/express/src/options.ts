/**
 * The options of `sse()`: core's route options, with Express's request, and `onError` that also gets
 * the response. Checked once, when the middleware is created, by core's route.
 */
import type { EventStream, RouteOptions, Source, TopicsResult } from '@ssekit/core';
import type { Request, Response } from 'express';

export type { TopicsResult };

/**
 * Options of `sse()`: the core stream options (`keepalive`, `retry`, `headers`, `highWaterMark`, …)
 * plus what happens before and around the stream (`hub`, `topics`, `filter`, `source`, `map`,
 * `negotiate`, `maxConnections`, …), with the same names on every adapter.
 */
export interface SseMiddlewareOptions<T = unknown> extends Omit<RouteOptions<Request, T>, 'onError' | 'source'> {
  /**
   * A source to stream, per request: called once the stream is open (and subscribed); its items are
   * sent as events and the stream ends when the source does. Stopped when the client leaves.
   */
  source?: (req: Request, stream: EventStream) => Source<T> | PromiseLike<Source<T>>;
  /**
   * Receives faults before the stream opened and every error after it: a handler that throws or calls
   * `next(err)`, a failing source, a failed subscription, a socket error. Default: `console.error`.
   */
  onError?: (error: unknown, req: Request, res: Response) => void;
}
