/**
 * The options of `sse()` and their validation. Validation runs once, when the middleware is created,
 * so a typo fails at startup instead of on every request.
 */
import {
  checkTopics,
  type EventStream,
  type EventStreamOptions,
  type Hub,
  type HubMessage,
  type PipeOptions,
  type Source,
  SseError,
  validateStreamOptions,
} from '@ssekit/core';
import type { Request, Response } from 'express';

/** What a `topics` function may answer: topics, `false` (refuse: 403), or an error (refuse with its status). */
export type TopicsResult = string | readonly string[] | false | Error;

/**
 * Options of `sse()`: the core stream options (`keepalive`, `retry`, `headers`, `highWaterMark`, …)
 * plus what the middleware does before and around the stream.
 */
export interface SseMiddlewareOptions extends Omit<EventStreamOptions, 'onError'> {
  /**
   * A hub to subscribe each stream to (with `topics`). Without an own `maxConnections`, streams open
   * in the hub's group: the hub's `maxConnections` applies and `hub.close()` closes them.
   */
  // biome-ignore lint/suspicious/noExplicitAny: any payload map; typed hubs must be accepted as they are.
  hub?: Hub<any>;
  /**
   * The topics to subscribe to, or a function of the request that returns them (or a promise). The
   * function refuses the request, before any byte of the stream, by returning/resolving `false` (403)
   * or an `Error`, or by throwing/rejecting: the status is the error's `status`/`statusCode`, else 403.
   * Requires `hub`.
   */
  topics?: TopicsResult | ((req: Request) => TopicsResult | Promise<TopicsResult>);
  /** A per-request filter: only hub messages it accepts reach this request's stream. Requires `hub`. */
  filter?: (req: Request) => ((message: HubMessage) => boolean) | undefined;
  /**
   * `true`: a request that does not accept `text/event-stream` (per `req.accepts()`) is handed to the
   * next handler untouched (`res.sse` stays unset), so the same URL can answer JSON. `false` (default):
   * such a request gets 406 through `next(err)`.
   */
  negotiate?: boolean;
  /** This middleware's own limit of open streams; past it, 503 + `Retry-After` before any stream byte. */
  maxConnections?: number;
  /** `Retry-After` seconds sent with that 503. Default 5. */
  retryAfter?: number;
  /**
   * A source to stream: called once the stream is open (and subscribed), its items are sent as events
   * with `stream.pipe()` and the stream ends when the source does. Stopped when the client leaves.
   */
  source?: (req: Request, stream: EventStream) => Source<unknown> | Promise<Source<unknown>>;
  /** Options for piping `source` (`map`, `errorEvent`, `end`). */
  pipe?: PipeOptions<unknown>;
  /**
   * Receives every error that happens after the stream opened: a handler that throws or calls
   * `next(err)`, a failing source, a failed subscription, a socket error. The stream ends; nothing is
   * sent in its place. Default: `console.error`, at most once per stream.
   */
  onError?: (error: unknown, req: Request, res: Response) => void;
}

const FUNCTIONS = ['source', 'filter'] as const;

/**
 * Throws `ERR_SSE_INVALID_OPTION` for any option of the wrong type or out of range: the stream options
 * through core's own check, then what only the middleware has. `maxConnections` and `retryAfter` are
 * checked by the `StreamGroup` the middleware creates.
 */
export function checkOptions(options: SseMiddlewareOptions): void {
  validateStreamOptions(options as EventStreamOptions);
  const { hub, topics, negotiate, group } = options;
  for (const name of FUNCTIONS) {
    const value = options[name];
    if (value !== undefined && typeof value !== 'function') invalid(`${name} must be a function`);
  }
  if (negotiate !== undefined && typeof negotiate !== 'boolean') invalid('negotiate must be a boolean');
  if (group !== undefined && options.maxConnections !== undefined) {
    invalid('give either group or maxConnections, not both');
  }
  if (options.pipe !== undefined && (typeof options.pipe !== 'object' || options.pipe === null)) {
    invalid('pipe must be an object of pipe options');
  }
  if (hub !== undefined && (typeof hub !== 'object' || hub === null || typeof hub.subscribe !== 'function')) {
    invalid('hub must be a hub from createHub()');
  }
  if (topics !== undefined) {
    if (hub === undefined) invalid('topics needs a hub to subscribe to');
    if (typeof topics !== 'function') {
      const bad = topicsProblem(topics as TopicsResult);
      if (bad !== undefined) invalid(bad);
    }
  }
  if (options.filter !== undefined && hub === undefined) invalid('filter needs a hub');
}

/** Returns why `topics` is not a usable topic list (core's check), or `undefined` when it is. */
export function topicsProblem(topics: TopicsResult): string | undefined {
  try {
    checkTopics(topics as string | readonly string[]);
    return undefined;
  } catch (error) {
    return (error as Error).message;
  }
}

function invalid(message: string): never {
  throw new SseError('ERR_SSE_INVALID_OPTION', message);
}
