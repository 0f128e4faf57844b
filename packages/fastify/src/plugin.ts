/**
 * The plugin: decorates `reply.sse()` and `request.acceptsEventStream()`, tracks its streams, and
 * ends them when Fastify closes.
 *
 * It translates Fastify's objects into core calls and nothing more: the reply is hijacked (so Fastify
 * never writes a second response), what hooks and plugins put on the reply (headers, status) is copied
 * onto the raw response, and the core event stream does the rest. Everything that can refuse a request
 * (406, 403, 503, a bad option) throws before the reply is hijacked, so Fastify's error handler answers
 * it like any other error, with the `SseError`'s `statusCode` and `headers` (e.g. `Retry-After`).
 *
 * Errors are the core `SseError`, not `@fastify/error` classes: it already carries what a Fastify
 * error does (`code`, `statusCode`) plus `headers`, and one class with one set of codes across core,
 * Express and Fastify keeps `isSseError(err, code)` working in a custom error handler.
 */
import fastifyAccepts from '@fastify/accepts';
import {
  type CloseOptions,
  checkTopics,
  createEventStream,
  type EventStream,
  type EventStreamOptions,
  forbidden,
  type Hub,
  type PipeOptions,
  type Source,
  SseError,
  type SseRequest,
  type SseResponse,
  StreamGroup,
  type SubscribeOptions,
} from '@ssekit/core';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { acceptsEventStream, assertAcceptsEventStream } from './negotiate.js';

/** Options of one `reply.sse()` call; they override the plugin's. */
export interface ReplySseOptions extends EventStreamOptions {
  /**
   * Answer 406 (`ERR_SSE_NOT_ACCEPTABLE`) when the request's `Accept` refuses `text/event-stream`.
   * Default: the plugin's option, `true`.
   */
  checkAccept?: boolean;
  /**
   * An extra group to join, e.g. a per-route `new StreamGroup({ maxConnections })`: its limit is
   * checked before the stream opens (503), in addition to the plugin's.
   */
  group?: StreamGroup;
}

/** Options of `reply.sse({ hub, topics })`: the new stream is subscribed to a hub. */
export interface HubSseOptions extends ReplySseOptions {
  /** The hub to subscribe to; its `maxConnections` applies too. */
  // biome-ignore lint/suspicious/noExplicitAny: any hub, whatever its topic map
  hub: Hub<any>;
  /**
   * The topics, or a function of the request that returns them. A function that returns `false` or
   * an `Error`, or throws, refuses the request before the stream opens: with the error's own
   * `statusCode` when it has one (e.g. 401), else 403 `ERR_SSE_FORBIDDEN`. (For an asynchronous
   * check, `await` it in the handler before calling `reply.sse()`.)
   */
  topics: string | readonly string[] | ((request: FastifyRequest) => string | readonly string[] | false | Error);
  /** Only messages for which this returns true reach this stream. */
  filter?: SubscribeOptions['filter'];
  /** Resume after this id instead of the client's `Last-Event-ID` header / `lastEventId` query. */
  lastEventId?: string;
}

/** Options of `reply.sse(source, options)`: how items become events. The stream ends with the source. */
export interface PipeSseOptions<T> extends ReplySseOptions, Pick<PipeOptions<T>, 'map' | 'errorEvent'> {}

/** Options of the plugin: the default stream options of every `reply.sse()`, plus the plugin's own. */
export interface SsekitFastifyOptions extends Omit<ReplySseOptions, 'group'> {
  /** Refuse new streams past this many open ones (all routes) with 503 + `Retry-After`. Default: no limit. */
  maxConnections?: number;
  /** The `Retry-After` of that 503, in seconds. Default 5. */
  retryAfter?: number;
  /**
   * On `app.close()`, every open stream gets this `retry:` hint (ms) before it ends, so clients come
   * back (to another instance) at that pace; `false` for none. Default 1000.
   */
  closeRetry?: number | false;
}

type AnySseOptions = ReplySseOptions & Partial<HubSseOptions> & PipeSseOptions<unknown>;

// Options of reply.sse() that are the adapter's, not the core stream's.
const ADAPTER_OPTIONS = new Set([
  'checkAccept',
  'group',
  'hub',
  'topics',
  'filter',
  'lastEventId',
  'map',
  'errorEvent',
]);

export const plugin: FastifyPluginAsync<SsekitFastifyOptions> = async (fastify, options) => {
  const { maxConnections, retryAfter, closeRetry = 1000, checkAccept = true, ...defaults } = options;
  // What is the plugin's own is checked once, at registration: a bad value fails the boot.
  const group = new StreamGroup({ maxConnections, retryAfter });
  if (closeRetry !== false && !(Number.isSafeInteger(closeRetry) && closeRetry >= 0)) {
    throw new SseError(
      'ERR_SSE_INVALID_OPTION',
      `closeRetry must be whole ms >= 0 or false, got ${String(closeRetry)}`,
    );
  }
  const closeOptions: CloseOptions | undefined = closeRetry === false ? undefined : { retry: closeRetry };

  if (!fastify.hasRequestDecorator('accepts')) await fastify.register(fastifyAccepts);
  fastify.decorateRequest('acceptsEventStream', acceptsEventStream);

  function sse(this: FastifyReply, first?: unknown, second?: unknown): EventStream {
    const source = isSource(first) ? first : undefined;
    const call = (source === undefined ? first : second) as AnySseOptions | undefined;
    const request = this.request;

    if (call?.checkAccept ?? checkAccept) assertAcceptsEventStream(request);
    const hub = call?.hub;
    const topics = hub === undefined ? undefined : resolveTopics(call?.topics, request);
    hub?.group.admit();
    call?.group?.admit();

    const streamOptions: EventStreamOptions = { ...defaults };
    if (call !== undefined) {
      for (const key of Object.keys(call) as (keyof EventStreamOptions)[]) {
        if (!ADAPTER_OPTIONS.has(key) && call[key] !== undefined) {
          (streamOptions as Record<string, unknown>)[key] = call[key];
        }
      }
    }
    streamOptions.group = group;
    streamOptions.onError ??= (err) => this.log.error({ err }, 'ssekit: stream error');
    // A status set with reply.code() (in the handler or a hook) counts, unless the call names one.
    if (streamOptions.status === undefined && this.statusCode !== 200) streamOptions.status = this.statusCode;

    const req = request.raw as SseRequest;
    const res = this.raw as SseResponse;
    // (A second reply.sse() finds the headers sent: createEventStream() says so with its own code.)
    if (!res.headersSent) copyReplyHeaders(this, res, req.httpVersionMajor >= 2);
    // Throws (503 from the plugin's limit, a bad option) before anything is written.
    const stream = createEventStream(req, res, streamOptions);
    this.hijack();
    quietSend(this, stream);
    call?.group?.add(stream);

    if (hub !== undefined && topics !== undefined) {
      const subscribe: SubscribeOptions = {};
      if (call?.filter !== undefined) subscribe.filter = call.filter;
      if (call?.lastEventId !== undefined) subscribe.lastEventId = call.lastEventId;
      hub.subscribe(stream, topics, subscribe).catch((err: unknown) => {
        // The hub was closed or its backplane failed: this stream cannot be served.
        this.log.error({ err }, 'ssekit: hub subscription failed');
        stream.close();
      });
    } else if (source !== undefined) {
      const pipe: PipeOptions<unknown> = {};
      if (call?.map !== undefined) pipe.map = call.map;
      if (call?.errorEvent !== undefined) pipe.errorEvent = call.errorEvent;
      // pipe() never rejects: a failing source ends this stream and goes to onError.
      void stream.pipe(source, pipe);
    }
    return stream;
  }
  fastify.decorateReply('sse', sse);

  // server.close() waits for open responses, and a stream never ends by itself: end them first.
  // onClose catches any stream opened after preClose (an inject() during shutdown).
  const closeStreams = async (): Promise<void> => group.closeAll(closeOptions);
  fastify.addHook('preClose', closeStreams);
  fastify.addHook('onClose', closeStreams);
};

/**
 * After the hijack, Fastify still calls `reply.send()` with what a sync handler returns or throws:
 * `(request, reply) => reply.sse(items)` returns the stream, and a throw after `reply.sse()` sends the
 * error. Both would only log "Reply was already sent". Take the stream (or the reply) quietly, and
 * log a thrown error as the error it is; the stream stays open (the handler may have meant to go on).
 */
function quietSend(reply: FastifyReply, stream: EventStream): void {
  const send = reply.send;
  reply.send = function sendAfterSse(this: FastifyReply, payload?: unknown): FastifyReply {
    if (payload === stream || payload === this) return this;
    if (payload instanceof Error) {
      this.log.error({ err: payload }, 'ssekit: the handler failed after reply.sse()');
      return this;
    }
    return send.call(this, payload);
  };
}

function isSource(value: unknown): value is Source<unknown> {
  if (value === null || typeof value !== 'object') return false;
  return (
    typeof (value as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function' ||
    typeof (value as Iterable<unknown>)[Symbol.iterator] === 'function' ||
    typeof (value as ReadableStream<unknown>).getReader === 'function'
  );
}

function resolveTopics(topics: HubSseOptions['topics'] | undefined, request: FastifyRequest): string[] {
  let value: string | readonly string[] | false | Error | undefined;
  const fromRequest = typeof topics === 'function';
  if (typeof topics === 'function') {
    try {
      value = topics(request);
    } catch (err) {
      throw forbidden(err);
    }
    if (value === false || value instanceof Error) throw forbidden(value);
  } else {
    value = topics;
  }
  // Checked before the stream opens, so that a bad topic is an error answer, not a broken stream.
  try {
    return checkTopics(value as string | readonly string[]);
  } catch (error) {
    // Topics computed from the request are the request's fault (400); a static list is the app's (500).
    throw new SseError('ERR_SSE_INVALID_TOPIC', (error as Error).message, { status: fromRequest ? 400 : undefined });
  }
}

// Content-Length would cut the stream short; connection-specific headers are forbidden on HTTP/2.
const SKIP = new Set(['content-length']);
const SKIP_HTTP2 = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade']);

function copyReplyHeaders(reply: FastifyReply, res: SseResponse, http2: boolean): void {
  const headers = reply.getHeaders();
  for (const name of Object.keys(headers)) {
    const value = headers[name];
    if (value === undefined || SKIP.has(name) || (http2 && SKIP_HTTP2.has(name))) continue;
    res.setHeader(name, value as string | number | string[]);
  }
}
