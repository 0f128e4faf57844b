/**
 * `@ssekit/web`: Server-Sent Events for fetch handlers — `(request: Request) => Response` — as in
 * Next.js route handlers, Hono, `Bun.serve`, `Deno.serve` and Cloudflare Workers.
 *
 * ```ts
 * import { createHub } from '@ssekit/core';
 * import { sse } from '@ssekit/web';
 * const hub = createHub();
 * export const GET = (request: Request) => sse(request, { hub, topics: ['news'] });
 * ```
 *
 * It translates a `Request` into core's route and the route's answer into a `Response`, and nothing
 * more: the body is core's web transport (a pull-based `ReadableStream`).
 */
import {
  EVENT_STREAM,
  type EventStream,
  Route,
  type RouteOptions,
  type RouteRequest,
  SseError,
  WebTransport,
} from '@ssekit/core';
import Negotiator from 'negotiator';

export type {
  EventStream,
  HubMessage,
  PipeOptions,
  RouteOptions,
  SendOptions,
  Source,
  SseErrorCode,
  TopicsResult,
} from '@ssekit/core';
export { isSseError, SseError } from '@ssekit/core';

/** Options of {@link sse}: the same names as the Express middleware's; `source` may be the source itself. */
export interface WebSseOptions<T = unknown> extends RouteOptions<Request, T> {
  /**
   * Cloudflare Workers: pass `ctx.waitUntil.bind(ctx)`. A request's timers are dropped once the client
   * has left, so a piped source waiting on one would never resume to run its `finally`; with this, the
   * request is kept alive until the source (or handler) is done.
   */
  waitUntil?: (promise: Promise<unknown>) => void;
}

/** Runs on the open stream: send, pipe, close, and `stream.signal` / `onClose` for the client leaving. */
export type WebSseHandler = (stream: EventStream, request: Request) => void | PromiseLike<void>;

/**
 * Answers `request` with a Server-Sent Events `Response`. `init` is the options (`hub` + `topics`,
 * `source`, limits, `keepalive`, …) or a handler that receives the open stream; give both as
 * `sse(request, options, handler)`. Refusals are plain responses (403, 406, 503 + `Retry-After`);
 * faults are reported to `onError` and answered with a stream that asks the client to come back.
 *
 * @throws {SseError} `ERR_SSE_INVALID_OPTION` (as a rejection) for a bad or unknown option.
 */
export async function sse<T = unknown>(
  request: Request,
  init?: WebSseOptions<T> | WebSseHandler,
  handler?: WebSseHandler,
): Promise<Response> {
  const { waitUntil, ...given } = typeof init === 'function' ? ({} as WebSseOptions<T>) : (init ?? {});
  const run = typeof init === 'function' ? init : handler;
  if (waitUntil !== undefined && typeof waitUntil !== 'function') {
    throw new SseError('ERR_SSE_INVALID_OPTION', 'sse(): waitUntil must be a function (ctx.waitUntil.bind(ctx))');
  }
  const route = new Route<Request>(given, {
    where: 'sse()',
    // A route made per request would count its own streams only: limits need a group made once.
    without: ['maxConnections', 'retryAfter'],
    sourceValue: true,
    handler: run,
    track: waitUntil,
  });
  let transport: WebTransport | undefined;
  const outcome = await route.handle(request, viewOf(request), () => {
    transport = new WebTransport(() => request.signal);
    return transport;
  });
  if (outcome.kind === 'refused') return refusal(outcome.error);
  if (transport === undefined) return new Response(null, { status: 500 });
  return new Response(request.method === 'HEAD' ? null : transport.body, {
    status: transport.status,
    headers: transport.headers,
  });
}

/**
 * True when `request` may get an event stream: its `Accept` allows `text/event-stream` (a missing
 * header or `*\/*` does). With the route's other media types, true only when the stream wins the
 * negotiation, so `fetch()` (which sends `*\/*`) gets the first alternative.
 */
export function acceptsEventStream(request: Request, alternatives: readonly string[] = []): boolean {
  const accept = request.headers.get('accept') ?? undefined;
  const negotiator = new Negotiator({ headers: { accept } });
  return negotiator.mediaType([...alternatives, EVENT_STREAM]) === EVENT_STREAM;
}

/** A 204 No Content: the one answer that makes `EventSource` stop reconnecting for good. */
export function refuse(): Response {
  return new Response(null, { status: 204 });
}

function viewOf(request: Request): RouteRequest {
  return {
    method: request.method,
    url: request.url,
    header: (name) => request.headers.get(name) ?? undefined,
    accepts: () => acceptsEventStream(request),
  };
}

function refusal(error: SseError): Response {
  const headers = new Headers(error.headers);
  headers.set('Content-Type', 'application/json; charset=utf-8');
  const status = error.status ?? 403;
  const body = JSON.stringify({ statusCode: status, code: error.code, message: error.message });
  return new Response(body, { status, headers });
}
