/**
 * `@ssekit/fastify`: Server-Sent Events for Fastify. A `fastify-plugin` that decorates
 * `reply.sse()` (open a stream, pipe a source, or subscribe to a hub) and
 * `request.acceptsEventStream()` (serve JSON and a stream on one route).
 *
 * ```ts
 * import ssekit from '@ssekit/fastify';
 * await app.register(ssekit, { keepalive: 15000 });
 * app.get('/events', (request, reply) => { reply.sse().send({ hello: 'world' }); });
 * ```
 */
import type { EventStream, Source, TopicsResult } from '@ssekit/core';
import type { FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import {
  type HubSseOptions,
  type PipeSseOptions,
  plugin,
  type ReplySseOptions,
  type SsekitDecorator,
} from './plugin.js';

declare module 'fastify' {
  interface FastifyReply {
    /**
     * Opens a Server-Sent Events stream on this reply and returns it. The reply is hijacked; headers
     * and a status set on it before (hooks, `@fastify/cors`, `reply.code()`) are sent with the stream.
     * With `{ hub, topics }` the stream is subscribed to the hub (and resumed from `Last-Event-ID`).
     * @throws {SseError} before anything is written: 406 `ERR_SSE_NOT_ACCEPTABLE`, 403
     * `ERR_SSE_FORBIDDEN`, 503 `ERR_SSE_TOO_MANY_CONNECTIONS` (with `Retry-After`),
     * `ERR_SSE_INVALID_OPTION`, `ERR_SSE_HEADERS_SENT`. A fault in a `topics` function is reported
     * (`request.log`) and answered with a stream that asks the client to come back.
     */
    sse(options?: ReplySseOptions | SyncHubSseOptions): EventStream;
    /**
     * With a `topics` function that returns a promise: resolves to the open stream once the topics are
     * known, or to `undefined` when the request was refused (the refusal is sent through Fastify's
     * error handler). Never rejects.
     */
    sse(options: AsyncHubSseOptions): Promise<EventStream | undefined>;
    /**
     * Opens a stream, sends every item of `source` (async iterable, iterable, Node `Readable`, web
     * `ReadableStream`) as an event, then ends it. The source is stopped when the client leaves; a
     * source that throws ends this stream only (after `errorEvent`, if given) and is logged.
     * @throws {SseError} like `reply.sse()`, before anything is written.
     */
    sse<T>(source: Source<T>, options?: PipeSseOptions<T>): EventStream;
  }
  interface FastifyRequest {
    /**
     * True when this request should get an event stream. Without arguments: the `Accept` header
     * allows `text/event-stream` (a missing header or `*\/*` does). With the route's other types
     * (e.g. `['application/json']`): `text/event-stream` wins the negotiation, so `fetch()` (which
     * sends `*\/*`) gets the first alternative and `EventSource` gets the stream.
     */
    acceptsEventStream(alternatives?: readonly string[]): boolean;
  }
  interface FastifyInstance {
    /** The plugin's streams: `app.ssekit.group.size`, `app.ssekit.group.closeAll({ retry })`. */
    ssekit: SsekitDecorator;
  }
}

/** `reply.sse({ hub, topics })` with static topics or a synchronous function. */
export interface SyncHubSseOptions extends HubSseOptions {
  topics: TopicsResult | ((request: FastifyRequest) => TopicsResult);
}

/** `reply.sse({ hub, topics })` with an asynchronous `topics` function. */
export interface AsyncHubSseOptions extends HubSseOptions {
  topics: (request: FastifyRequest) => PromiseLike<TopicsResult>;
}

/**
 * The plugin: `await app.register(ssekit, options)`. Its options are the default options of every
 * `reply.sse()`, plus `maxConnections`, `retryAfter`, `closeRetry` and `checkAccept`.
 */
export const ssekit = fp(plugin, { name: '@ssekit/fastify', fastify: '5.x' });
export default ssekit;

export type {
  CloseOptions,
  EventStream,
  EventStreamOptions,
  Hub,
  HubMessage,
  PipeOptions,
  SendOptions,
  Source,
  SseErrorCode,
} from '@ssekit/core';
export { isSseError, SseError, StreamGroup } from '@ssekit/core';
export { EVENT_STREAM } from './negotiate.js';
export type {
  HubSseOptions,
  PipeSseOptions,
  ReplySseOptions,
  SsekitDecorator,
  SsekitFastifyOptions,
} from './plugin.js';
