/**
 * The plugin: decorates `reply.sse()`, `request.acceptsEventStream()` and `fastify.ssekit` (its
 * group), and ends its streams when Fastify closes.
 *
 * It translates Fastify's objects into core's route and the route's answer back, and nothing more:
 * a refusal (406, 403, 503 + `Retry-After`) is thrown or sent before the reply is hijacked, so
 * Fastify's error handler answers it with the `SseError`'s `statusCode` and `headers`; an open stream
 * hijacks the reply (so Fastify never writes a second response) after what hooks and plugins put on
 * it (headers, status) was copied onto the raw response.
 *
 * Errors are the core `SseError`, not `@fastify/error` classes: it already carries what a Fastify
 * error does (`code`, `statusCode`) plus `headers`, and one class with one set of codes across core,
 * Express, Fastify and fetch handlers keeps `isSseError(err, code)` working in a custom error handler.
 */
import fastifyAccepts from '@fastify/accepts';
import {
  type CloseOptions,
  connectNode,
  EventStream,
  isSource,
  nodeRequestView,
  Route,
  type RouteOptions,
  type RouteOutcome,
  SseError,
  type SseRequest,
  type SseResponse,
  StreamGroup,
} from '@ssekit/core';
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { acceptsEventStream } from './negotiate.js';

/** Options of one `reply.sse()` call (the route options, with the same names as on Express); they override the plugin's. */
export type ReplySseOptions = Omit<
  RouteOptions<FastifyRequest>,
  'maxConnections' | 'retryAfter' | 'source' | 'hub' | 'topics' | 'filter'
>;

/** Options of `reply.sse({ hub, topics })`: the new stream is subscribed to a hub. */
export interface HubSseOptions extends ReplySseOptions {
  // biome-ignore lint/suspicious/noExplicitAny: any hub, whatever its topic map
  hub: NonNullable<RouteOptions<any>['hub']>;
  topics: NonNullable<RouteOptions<FastifyRequest>['topics']>;
  filter?: RouteOptions<FastifyRequest>['filter'];
}

/** Options of `reply.sse(source, options)`: how items become events. The stream ends with the source. */
export interface PipeSseOptions<T> extends Omit<ReplySseOptions, 'map'> {
  map?: (item: T) => import('@ssekit/core').SseEvent;
}

/** Options of the plugin: the default options of every `reply.sse()`, plus the plugin's own. */
export interface SsekitFastifyOptions
  extends Omit<RouteOptions<FastifyRequest>, 'hub' | 'topics' | 'filter' | 'source' | 'lastEventId' | 'group'> {
  /**
   * On `app.close()`, every open stream gets this `retry:` hint (ms) before it ends, so clients come
   * back (to another instance) at that pace; `false` for none. Default 1000.
   */
  closeRetry?: number | false;
}

/** What `fastify.ssekit` holds. */
export interface SsekitDecorator {
  /** Every stream the plugin opened: `.size` for metrics, `closeAll({ retry })`. */
  readonly group: StreamGroup;
}

const PER_CALL_ONLY = ['hub', 'topics', 'filter', 'source', 'lastEventId', 'group'];

export const plugin: FastifyPluginAsync<SsekitFastifyOptions> = async (fastify, options) => {
  const { maxConnections, retryAfter, closeRetry = 1000, ...defaults } = options;
  // Checked once, at registration: a bad or unknown option fails the boot (ready() rejects).
  void new Route<FastifyRequest>(defaults, { where: 'register(ssekit)', without: PER_CALL_ONLY, groups: [] });
  const group = new StreamGroup({ maxConnections, retryAfter });
  if (closeRetry !== false && !(Number.isSafeInteger(closeRetry) && closeRetry >= 0)) {
    throw new SseError(
      'ERR_SSE_INVALID_OPTION',
      `register(ssekit): closeRetry must be whole ms >= 0 or false, got ${String(closeRetry)}`,
    );
  }
  const closeOptions: CloseOptions | undefined = closeRetry === false ? undefined : { retry: closeRetry };

  if (!fastify.hasRequestDecorator('accepts')) await fastify.register(fastifyAccepts);
  fastify.decorateRequest('acceptsEventStream', acceptsEventStream);
  fastify.decorate('ssekit', { group } satisfies SsekitDecorator);

  function sse(this: FastifyReply, first?: unknown, second?: unknown): EventStream | Promise<EventStream | undefined> {
    const source = isSource(first) ? first : undefined;
    const call = ((source === undefined ? first : second) ?? {}) as RouteOptions<FastifyRequest>;
    const request = this.request;
    const merged: RouteOptions<FastifyRequest> = { ...defaults, ...call };
    if (source !== undefined) merged.source = source;
    // A status set with reply.code() (in the handler or a hook) counts, unless the call names one.
    if (merged.status === undefined && this.statusCode !== 200) merged.status = this.statusCode;
    const route = new Route<FastifyRequest>(merged, {
      where: 'reply.sse()',
      without: ['maxConnections', 'retryAfter'],
      groups: [group],
      sourceValue: true,
      // A stream lives long: it keeps the request id to log with, not the request and its logger.
      report: (err, req) => logError(fastify, err, req as FastifyRequest | string),
      keep: (req) => req.id,
    });
    const req = request.raw as SseRequest;
    const res = this.raw as SseResponse;
    const http = nodeRequestView(req, (type) => request.accepts().type([type]) === type);
    const connect = () => {
      const transport = connectNode(req, res);
      copyReplyHeaders(this, res, req.httpVersionMajor >= 2);
      this.hijack();
      quietSend(this);
      return transport;
    };

    const outcome = route.run(request, http, connect);
    return outcome instanceof Promise ? outcome.then((later) => answerLater(this, later)) : answer(outcome);
  }
  fastify.decorateReply('sse', sse as FastifyReply['sse']);

  // server.close() waits for open responses, and a stream never ends by itself: end them first.
  // onClose catches any stream opened after preClose (an inject() during shutdown).
  const closeStreams = async (): Promise<void> => group.closeAll(closeOptions);
  fastify.addHook('preClose', closeStreams);
  fastify.addHook('onClose', closeStreams);
};

/** Logs with the request's logger while the request is at hand, else with its id. */
function logError(fastify: FastifyInstance, err: unknown, req: FastifyRequest | string): void {
  if (typeof req === 'string') fastify.log.error({ err, reqId: req }, 'ssekit: stream error');
  else req.log.error({ err }, 'ssekit: stream error');
}

/** A synchronous answer: the stream, or the refusal thrown for Fastify's error handler. */
function answer(outcome: RouteOutcome): EventStream {
  if (outcome.kind === 'open') return outcome.stream;
  if (outcome.kind === 'refused' || outcome.kind === 'failed') throw outcome.error;
  throw new SseError('ERR_SSE_NOT_ACCEPTABLE', 'the request does not accept text/event-stream', { status: 406 });
}

/** An answer after an asynchronous `topics`: the refusal is sent through Fastify's error handler. */
function answerLater(reply: FastifyReply, outcome: RouteOutcome): EventStream | undefined {
  if (outcome.kind === 'open') return outcome.stream;
  reply.send(outcome.kind === 'refused' || outcome.kind === 'failed' ? outcome.error : undefined);
  return undefined;
}

/**
 * After the hijack, Fastify still calls `reply.send()` with what a handler returns or throws:
 * `(request, reply) => reply.sse(items)` returns the stream, and a throw after `reply.sse()` sends the
 * error. Both would only log "Reply was already sent". Take the stream (or nothing) quietly, and log a
 * thrown error as the error it is; the stream stays open (the handler may have meant to go on).
 */
function quietSend(reply: FastifyReply): void {
  const send = reply.send;
  reply.send = function sendAfterSse(this: FastifyReply, payload?: unknown): FastifyReply {
    if (payload === undefined || payload === this || payload instanceof EventStream) return this;
    if (payload instanceof Error) {
      this.log.error({ err: payload }, 'ssekit: the handler failed after reply.sse()');
      return this;
    }
    return send.call(this, payload);
  };
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
