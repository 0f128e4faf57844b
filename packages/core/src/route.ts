/**
 * The route: everything between "a request arrived" and "the stream is open", once, for every adapter.
 * Express, Fastify and fetch handlers translate their request into a {@link RouteRequest} and a
 * transport, and answer what the route decides:
 *
 * - not acceptable (406), unless the app negotiates itself (`negotiate: true`);
 * - a deliberate refusal (`false`, an `SseError` with a status, a 4xx error): that status, before any
 *   stream byte;
 * - a fault (anything else thrown or rejected, bad topics from a `topics` function, a failed
 *   subscription): reported to the app, never shown to the client. The client gets a 200 stream that
 *   holds only a `retry:` hint and an `ssekit-error` event with a code, then ends: `EventSource` gives up
 *   for good on any non-200 answer, so this is the answer that keeps it reconnecting until the fault
 *   clears;
 * - else the stream opens, joins its groups, subscribes to the hub (resuming after `Last-Event-ID`),
 *   and pipes its `source` or runs its `handler`.
 */
import { isSseError, refusalOf, SseError } from './errors.js';
import type { SseEvent } from './frame.js';
import { StreamGroup } from './group.js';
import { EVENT_STREAM, openStream } from './handshake.js';
import { checkTopics, type Hub, type HubMessage, type SubscribeOptions } from './hub.js';
import { lastEventIdOf } from './last-event-id.js';
import {
  checkOptionNames,
  type EventStreamOptions,
  invalidOption,
  STREAM_OPTION_NAMES,
  validateStreamOptions,
} from './options.js';
import { isSource, type PipeOptions, type Source, stopSource } from './pipe.js';
import { describeError } from './runtime.js';
import type { EventStream } from './stream.js';
import type { Transport } from './transport.js';

/** What a `topics` function may answer: topics, `false` (refuse: 403), or an error (refuse or fault). */
export type TopicsResult = string | readonly string[] | false | Error;

/** A request as the route needs it, whatever the framework. */
export interface RouteRequest {
  /** The method (`HEAD` gets the headers alone). */
  readonly method: string;
  /** The request URL: path and query, or the full URL (for the `lastEventId` query parameter). */
  readonly url: string;
  /** A request header by lower-case name. */
  header(name: string): string | undefined;
  /** True when the client takes `type` (the framework's own Accept negotiation). */
  accepts(type: string): boolean;
}

/**
 * The options every adapter takes (`sse(options)` on Express, `reply.sse(options)` on Fastify,
 * `sse(request, options)` on fetch handlers): the stream options, plus what happens before and around
 * the stream. `Req` is the framework's request, handed to the functions below.
 */
export interface RouteOptions<Req = unknown, Item = unknown> extends Omit<EventStreamOptions, 'onError'> {
  /**
   * A hub to subscribe each stream to (with `topics`). Without an own `maxConnections` or `group`,
   * streams open in the hub's group: its `maxConnections` applies and `hub.close()` closes them.
   */
  // biome-ignore lint/suspicious/noExplicitAny: any payload map; typed hubs must be accepted as they are.
  hub?: Hub<any>;
  /**
   * The topics to subscribe to, or a function of the request that returns them (or a promise). The
   * function refuses the request — before any stream byte — with `false` (403), an `SseError` with a
   * `status`, or an error with a 4xx `status`/`statusCode` (returned, thrown or rejected). Anything
   * else it throws is a fault (see the module notes). Requires `hub`.
   */
  topics?: TopicsResult | ((req: Req) => TopicsResult | PromiseLike<TopicsResult>);
  /** Only hub messages for which this returns true reach the stream (once per message). Requires `hub`. */
  filter?: (message: HubMessage, req: Req) => boolean;
  /** Resume after this id instead of the client's `Last-Event-ID` header / `lastEventId` query. */
  lastEventId?: string;
  /**
   * What to stream once the stream is open (and subscribed): its items are sent as events and the
   * stream ends with it; it is stopped when the client leaves. A function of the request (called per
   * request), or — where options are given per request (fetch handlers, `reply.sse()`) — the source itself.
   */
  source?: Source<Item> | ((req: Req, stream: EventStream) => Source<Item> | PromiseLike<Source<Item>>);
  /** Turns a `source` item into the event to send. Default: the item is the event's `data`. */
  map?: (item: Item) => SseEvent;
  /** Shapes an event sent when `source` fails, before the stream ends. Default: none. */
  errorEvent?: (error: unknown) => SseEvent | undefined;
  /**
   * `true`: content negotiation is the app's, and a request whose `Accept` refuses `text/event-stream`
   * is not answered 406 — Express hands it to the next handler (so the same URL can answer JSON);
   * Fastify and fetch handlers stream anyway (the handler already chose). Default `false`: 406.
   */
  negotiate?: boolean;
  /** This route's own limit of open streams; past it, 503 + `Retry-After` before any stream byte. */
  maxConnections?: number;
  /** `Retry-After` seconds sent with that 503. Default 5. */
  retryAfter?: number;
  /**
   * The `retry:` hint (ms) of the stream that answers a fault, jittered to 50–100 % so that clients do
   * not come back all at once. Default 5000.
   */
  faultRetry?: number;
  /** Receives faults and every error after the stream opened (a failing source, a socket error). */
  onError?: (error: unknown, req: Req) => void;
}

/** The option names of {@link RouteOptions}. */
export const ROUTE_OPTION_NAMES: readonly string[] = [
  ...STREAM_OPTION_NAMES,
  'hub',
  'topics',
  'filter',
  'lastEventId',
  'source',
  'map',
  'errorEvent',
  'negotiate',
  'maxConnections',
  'retryAfter',
  'faultRetry',
];

/** How an adapter sets up its route. */
export interface RouteSetup<Req> {
  /** Named in option errors: `sse()`, `reply.sse()`, `register(ssekit)`. */
  where: string;
  /** Option names this adapter takes beyond {@link ROUTE_OPTION_NAMES}. */
  names?: readonly string[];
  /** Names of {@link ROUTE_OPTION_NAMES} this adapter does not take. */
  without?: readonly string[];
  /** Every stream also opens in these groups (a plugin's), whose limits apply too. */
  groups?: readonly StreamGroup[];
  /** Express: a request that refuses the stream under `negotiate: true` is handed on (`pass`). */
  passNotAcceptable?: boolean;
  /** A `source` may be the source itself (options given per request). */
  sourceValue?: boolean;
  /** Runs on the open stream, after subscribing (fetch handlers' `sse(request, stream => …)`). */
  handler?: (stream: EventStream, req: Req) => void | PromiseLike<void>;
  /** The default reporter (a framework logger). Default `console.error`. */
  report?: (error: unknown, req: Req) => void;
  /**
   * With the default reporter: what of the request a stream keeps for the life of the connection to
   * report with (Fastify keeps the request id, not the request and its logger). Default: the request.
   */
  keep?: (req: Req) => unknown;
  /**
   * Told of the work that runs for an open stream (its piped source, its handler), which settles
   * once that work is done: workerd's `ctx.waitUntil()` keeps the request's timers alive until then.
   */
  track?: (work: Promise<unknown>) => void;
}

/** What the route decided for one request. */
export type RouteOutcome =
  /** `negotiate: true` and the client refuses `text/event-stream`: hand it on untouched. */
  | { readonly kind: 'pass' }
  /** A refusal: answer `error.status` with `error.headers`, before any stream byte. */
  | { readonly kind: 'refused'; readonly error: SseError }
  /** The stream is open (or, after a fault, the fault answer was written and `stream` is closed). */
  | { readonly kind: 'open'; readonly stream: EventStream }
  /** A fault that could not be answered with a stream (the response had already started). */
  | { readonly kind: 'failed'; readonly error: unknown };

/** Connects the transport for this request; throws `ERR_SSE_HEADERS_SENT` when it cannot. */
export type Connect = () => Transport;

const PASS: RouteOutcome = { kind: 'pass' };
const DEFAULT_FAULT_RETRY = 5000;
/** The event type of the event that tells a client about a fault. */
export const FAULT_EVENT = 'ssekit-error';

/** One route's options, checked once, and what it does per request. */
export class Route<Req = unknown> {
  /** The group the streams open in: `closeAll()` on shutdown, `.size` for metrics. */
  readonly group: StreamGroup | undefined;
  readonly #options: EventStreamOptions;
  readonly #hub: Hub<object> | undefined;
  readonly #topics: string[] | undefined;
  readonly #topicsOf: ((req: Req) => TopicsResult | PromiseLike<TopicsResult>) | undefined;
  readonly #refusedTopics: TopicsResult | undefined;
  readonly #filter: RouteOptions<Req>['filter'];
  readonly #lastEventId: string | undefined;
  readonly #source: RouteOptions<Req>['source'];
  readonly #pipe: PipeOptions<unknown>;
  readonly #negotiate: boolean;
  readonly #passNotAcceptable: boolean;
  readonly #admit: StreamGroup[];
  readonly #join: readonly StreamGroup[];
  readonly #faultRetry: number;
  readonly #handler: RouteSetup<Req>['handler'];
  readonly #track: RouteSetup<Req>['track'];
  readonly #report: (error: unknown, req: Req) => void;
  readonly #keep: ((req: Req) => unknown) | undefined;

  /** @throws {SseError} `ERR_SSE_INVALID_OPTION` for an unknown name, a wrong type or a bad value. */
  // biome-ignore lint/suspicious/noExplicitAny: the item type is the caller's; the route only passes items on.
  constructor(options: RouteOptions<Req, any>, setup: RouteSetup<Req>) {
    const without = setup.without ?? [];
    const names = [...ROUTE_OPTION_NAMES.filter((name) => !without.includes(name)), ...(setup.names ?? [])];
    checkOptionNames(options, names, setup.where);
    const {
      hub,
      topics,
      filter,
      lastEventId,
      source,
      map,
      errorEvent,
      negotiate,
      maxConnections,
      retryAfter,
      faultRetry,
      onError,
      group,
      ...streamOptions
    } = options;
    validateStreamOptions(streamOptions);
    for (const [name, value] of [
      ['filter', filter],
      ['map', map],
      ['errorEvent', errorEvent],
      ['onError', onError],
    ] as const) {
      if (value !== undefined && typeof value !== 'function')
        invalidOption(`${setup.where}: ${name} must be a function`);
    }
    if (negotiate !== undefined && typeof negotiate !== 'boolean') invalidOption('negotiate must be a boolean');
    if (hub !== undefined && (typeof hub !== 'object' || hub === null || typeof hub.subscribe !== 'function')) {
      invalidOption('hub must be a hub from createHub()');
    }
    if (topics !== undefined && hub === undefined) invalidOption('topics needs a hub to subscribe to');
    if (hub !== undefined && topics === undefined) invalidOption('hub needs topics to subscribe to');
    if (filter !== undefined && hub === undefined) invalidOption('filter needs a hub');
    if (lastEventId !== undefined && typeof lastEventId !== 'string') invalidOption('lastEventId must be a string');
    if (source !== undefined && typeof source !== 'function' && !(setup.sourceValue && isSource(source))) {
      invalidOption(
        setup.sourceValue
          ? 'source must be an async iterable, an iterable, a ReadableStream or a function of the request'
          : 'source must be a function of the request that returns what to stream',
      );
    }
    if (faultRetry !== undefined && !(Number.isSafeInteger(faultRetry) && faultRetry >= 0)) {
      invalidOption(`faultRetry must be whole ms >= 0, got ${String(faultRetry)}`);
    }
    if (group !== undefined && maxConnections !== undefined)
      invalidOption('give either group or maxConnections, not both');
    if (group !== undefined && typeof (group as StreamGroup | null)?.admit !== 'function') {
      invalidOption('group must be a StreamGroup');
    }

    if (typeof topics === 'function') {
      this.#topicsOf = topics;
    } else if (topics === false || topics instanceof Error) {
      this.#refusedTopics = topics;
    } else if (topics !== undefined) {
      try {
        this.#topics = checkTopics(topics);
      } catch (error) {
        invalidOption(`${setup.where}: ${(error as Error).message}`);
      }
    }
    this.#hub = hub;
    this.#filter = filter;
    this.#lastEventId = lastEventId;
    this.#source = source;
    this.#pipe = {};
    if (map !== undefined) this.#pipe.map = map as (item: unknown) => SseEvent;
    if (errorEvent !== undefined) this.#pipe.errorEvent = errorEvent;
    this.#negotiate = negotiate ?? false;
    this.#passNotAcceptable = setup.passNotAcceptable ?? false;
    this.#faultRetry = faultRetry ?? DEFAULT_FAULT_RETRY;
    this.#handler = setup.handler;
    this.#track = setup.track;
    const fallback = setup.report ?? defaultReport;
    this.#report = onError === undefined ? fallback : guard(onError);
    this.#keep = onError === undefined ? setup.keep : undefined;

    // The home group: the given one, else an own one for an own limit (or when there is no hub to
    // hold the streams), else the hub's.
    const own =
      group ??
      (maxConnections !== undefined || (hub === undefined && setup.groups === undefined)
        ? new StreamGroup({ maxConnections, retryAfter })
        : undefined);
    this.group = own ?? setup.groups?.[0] ?? (hub as Hub<object> | undefined)?.group;
    const join = [...(setup.groups ?? [])].filter((g) => g !== own);
    this.#join = join;
    // The hub's limit is checked too; the hub adds the stream to its group when it subscribes.
    const hubGroup = (hub as Hub<object> | undefined)?.group;
    this.#admit = [
      ...(own === undefined ? [] : [own]),
      ...join,
      ...(hubGroup !== undefined && hubGroup !== own ? [hubGroup] : []),
    ];
    // Streams keep these options for their life: no reference back to the route (a route made per
    // request, as `reply.sse()` and fetch handlers do, is then not kept alive by its stream).
    this.#options = { ...streamOptions, group: own, onError: reportStreamError };
  }

  /** True when this route subscribes to a hub. */
  get subscribes(): boolean {
    return this.#hub !== undefined;
  }

  /**
   * Runs the whole route for one request: negotiation, topics, admission, open, subscribe, then the
   * source or handler. Never rejects.
   */
  async handle(req: Req, http: RouteRequest, connect: Connect): Promise<RouteOutcome> {
    return this.#run(req, http, connect, true);
  }

  /**
   * The whole route, answered synchronously when it can be: at once unless `topics` answers a
   * promise, and then once the stream is subscribed (for `reply.sse()`, which hands back the stream).
   * Never throws or rejects.
   */
  run(req: Req, http: RouteRequest, connect: Connect): RouteOutcome | Promise<RouteOutcome> {
    return this.#run(req, http, connect, false);
  }

  #run(req: Req, http: RouteRequest, connect: Connect, subscribed: boolean): RouteOutcome | Promise<RouteOutcome> {
    try {
      const accepted = this.accept(http);
      if (accepted !== undefined) return accepted;
      let topics: ReturnType<Route<Req>['topicsFor']>;
      try {
        topics = this.topicsFor(req);
      } catch (error) {
        return this.decline(error, req, http, connect);
      }
      if (typeof (topics as PromiseLike<TopicsResult> | undefined)?.then === 'function') {
        return Promise.resolve(topics).then(
          (resolved) => this.open(req, http, connect, resolved).ready,
          (error: unknown) => this.decline(error, req, http, connect),
        );
      }
      const opened = this.open(req, http, connect, topics as TopicsResult | undefined);
      return subscribed ? opened.ready : opened.outcome;
    } catch (error) {
      return this.decline(error, req, http, connect);
    }
  }

  /** The negotiation step: `undefined` to go on, else the outcome (pass, or 406). */
  accept(http: RouteRequest): RouteOutcome | undefined {
    if (http.accepts(EVENT_STREAM)) return undefined;
    if (this.#negotiate) return this.#passNotAcceptable ? PASS : undefined;
    this.#dropSource();
    return {
      kind: 'refused',
      error: new SseError('ERR_SSE_NOT_ACCEPTABLE', `this resource is only available as ${EVENT_STREAM}`, {
        status: 406,
      }),
    };
  }

  /** The topics of this request: the static list, or what the `topics` function answers (maybe a promise). */
  topicsFor(req: Req): TopicsResult | PromiseLike<TopicsResult> | undefined {
    if (this.#topicsOf !== undefined) return this.#topicsOf(req);
    return this.#refusedTopics ?? this.#topics;
  }

  /**
   * Opens the stream for `topics` (as {@link topicsFor} answered, resolved): refusals and faults are
   * answered here too. `outcome` is known at once; `ready` resolves once the stream is subscribed and
   * its source or handler started. Never throws.
   */
  open(
    req: Req,
    http: RouteRequest,
    connect: Connect,
    topics: TopicsResult | undefined,
  ): { outcome: RouteOutcome; ready: Promise<RouteOutcome> } {
    let list: string[] | undefined;
    if (this.#hub !== undefined) {
      if (topics === false || topics instanceof Error) return settled(this.decline(topics, req, http, connect));
      try {
        list = checkTopics(topics as string | readonly string[]);
      } catch (error) {
        return settled(this.decline(error, req, http, connect));
      }
    }
    let stream: EventStream;
    try {
      for (const group of this.#admit) group.admit();
      stream = openStream(connect(), this.#options, {
        method: http.method,
        lastEventId: lastEventIdOf(http.header('last-event-id'), http.url, this.#options.maxLastEventIdLength),
      });
    } catch (error) {
      return settled(this.decline(error, req, http, connect));
    }
    for (const group of this.#join) group.add(stream);
    const kept = this.#keep === undefined ? req : this.#keep(req);
    contexts.set(stream, { report: this.#report as (error: unknown, req: unknown) => void, req: kept });
    const outcome: RouteOutcome = { kind: 'open', stream };
    return { outcome, ready: this.#start(req, stream, list).then(() => outcome) };
  }

  /**
   * Answers what stopped a request before its stream opened: a refusal as itself; a fault reported and
   * answered with the fault stream (see the module notes).
   */
  decline(reason: unknown, req: Req, http: RouteRequest, connect: Connect): RouteOutcome {
    this.#dropSource();
    const refusal = refusalOf(reason);
    if (refusal !== undefined) return { kind: 'refused', error: refusal };
    const fault = asFault(reason);
    this.#report(fault, req);
    let transport: Transport;
    try {
      transport = connect();
    } catch (error) {
      return { kind: 'failed', error: isSseError(error) ? error : fault };
    }
    const stream = openStream(transport, this.#faultOptions(), {
      method: http.method,
      lastEventId: undefined,
    });
    stream.sendEvent({ event: FAULT_EVENT, data: { code: fault.code } });
    stream.close();
    return { kind: 'open', stream };
  }

  /** Reports `error` for `req` the way this route reports (its `onError`, or the adapter's logger). */
  report(error: unknown, req: Req): void {
    this.#report(error, req);
  }

  async #start(req: Req, stream: EventStream, topics: string[] | undefined): Promise<void> {
    if (this.#hub !== undefined && topics !== undefined) {
      const subscribe: SubscribeOptions = {};
      const filter = this.#filter;
      if (filter !== undefined) subscribe.filter = (message) => filter(message, req);
      if (this.#lastEventId !== undefined) subscribe.lastEventId = this.#lastEventId;
      try {
        await this.#hub.subscribe(stream, topics, subscribe);
      } catch (error) {
        this.#failOpen(stream, error, req);
        this.#dropSource();
        return;
      }
    }
    // The client left (or the hub closed) while we subscribed: nobody to stream to.
    if (!stream.isOpen) {
      this.#dropSource();
      return;
    }
    if (this.#source !== undefined) {
      let source: Source<unknown>;
      try {
        const given = this.#source;
        source = typeof given === 'function' ? await given(req, stream) : given;
      } catch (error) {
        this.#failOpen(stream, error, req);
        return;
      }
      // pipe() never rejects: a failing source ends this stream and reaches onError.
      const piped = stream.pipe(source, this.#pipe);
      this.#track?.(piped);
    }
    const handler = this.#handler;
    if (handler !== undefined) {
      // Not awaited: a handler may stream for as long as the client stays, and the response must be
      // handed to the runtime before then.
      const ran = Promise.resolve()
        .then(() => handler(stream, req))
        .catch((error: unknown) => {
          this.#report(error, req);
          stream.close();
        });
      this.#track?.(ran.then(() => stream.closed));
    }
  }

  // A source given as a value was started by the caller: one that will not be piped is stopped, so that
  // a generation behind it does not run on for nobody.
  #dropSource(): void {
    const source = this.#source;
    if (source !== undefined && typeof source !== 'function') stopSource(source);
  }

  // A fault after the stream opened: reported; the client is told the code and when to come back.
  #failOpen(stream: EventStream, error: unknown, req: Req): void {
    const fault = asFault(error, 'after the stream opened');
    this.#report(fault, req);
    if (!stream.isOpen) return;
    stream.sendEvent({ event: FAULT_EVENT, data: { code: fault.code } });
    stream.close({ retry: this.#jitteredRetry() });
  }

  #faultOptions(): EventStreamOptions {
    const options: EventStreamOptions = { keepalive: false, retry: this.#jitteredRetry() };
    // Headers the app asked for (CORS above all) let a cross-origin client read the answer.
    if (this.#options.headers !== undefined) options.headers = this.#options.headers;
    return options;
  }

  #jitteredRetry(): number {
    return Math.round(this.#faultRetry * (0.5 + 0.5 * Math.random()));
  }
}

/** Who reports a stream's errors, and for which request. */
interface StreamContext {
  readonly report: (error: unknown, req: unknown) => void;
  readonly req: unknown;
}

const contexts = new WeakMap<EventStream, StreamContext>();

function reportStreamError(error: unknown, stream: EventStream): void {
  const context = contexts.get(stream);
  if (context === undefined) defaultReport(error);
  else context.report(error, context.req);
}

function settled(outcome: RouteOutcome): { outcome: RouteOutcome; ready: Promise<RouteOutcome> } {
  return { outcome, ready: Promise.resolve(outcome) };
}

/** A fault as the app's logger gets it: an `SseError` with a code, the original as its cause. */
function asFault(reason: unknown, when = 'before the stream opened'): SseError {
  if (reason instanceof SseError && reason.status === undefined) return reason;
  return new SseError('ERR_SSE_FAULT', `the route failed ${when}: ${describeError(reason)}`, { cause: reason });
}

function defaultReport(error: unknown): void {
  console.error('[ssekit]', error);
}

function guard<Req>(onError: (error: unknown, req: Req) => void): (error: unknown, req: Req) => void {
  return (error, req) => {
    try {
      onError(error, req);
    } catch (reportError) {
      console.error('[ssekit] onError threw:', reportError, 'while reporting:', error);
    }
  };
}
