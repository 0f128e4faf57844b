/**
 * The event stream: one open `text/event-stream` response, over `node:http` or the `node:http2`
 * compatibility API.
 *
 * Data path: `send()` encodes once (frame.ts) and queues the frame; at the end of the turn the queue
 * leaves in ONE `write()` (flush.ts). `write()`'s result is always honoured: while the socket has not
 * drained, frames wait in a queue bounded by `highWaterMark`, past which the overflow policy applies
 * (`close`, or `drop` whole oldest events). Heartbeats and timeouts come from the one shared scheduler
 * (keepalive.ts). Disconnects are taken from the response's `close`, which (unlike the request's)
 * fires when the connection goes, and turned into `signal`, `onClose` and `closed`.
 */
import { type IncomingMessage, ServerResponse, validateHeaderName, validateHeaderValue } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import { SseError } from './errors.js';
import { type Flushable, flushQueued, scheduleFlush } from './flush.js';
import { encode, encodeComment, encodeData, encodeRetry, HEARTBEAT, type Serializer, type SseEvent } from './frame.js';
import { allStreams, type CloseOptions, type CloseWatcher, type GroupMember, type StreamGroup } from './group.js';
import { defaultScheduler, type KeepaliveScheduler, type Tickable } from './keepalive.js';

/** A request from `node:http` or `node:http2` (compat API); Express and Fastify requests are these. */
export type SseRequest = IncomingMessage | Http2ServerRequest;
/** A response from `node:http` or `node:http2` (compat API). */
export type SseResponse = ServerResponse | Http2ServerResponse;

/** What to do when a client stops reading and the queue passes `highWaterMark`. */
export type OverflowPolicy = 'close' | 'drop';

/** Reported through `onOverflow` each time the overflow policy acts. */
export interface OverflowInfo {
  /** The policy that acted. */
  policy: OverflowPolicy | 'timeout';
  /** Whole events dropped this time (policy `drop`), or left unsent (policy `close`/timeout). */
  droppedEvents: number;
  /** Bytes that were queued when the policy acted. */
  queuedBytes: number;
}

/** Options of {@link createEventStream}; the adapters take the same ones. */
export interface EventStreamOptions {
  /** Status code of the stream response. Default 200 (`EventSource` only accepts 200). */
  status?: number;
  /** Extra response headers. Headers already set on the response (CORS, auth) are kept too. */
  headers?: Record<string, string | number | readonly string[]>;
  /** A `retry:` hint (ms) written as soon as the stream opens. */
  retry?: number;
  /** Heartbeat after this many ms without a write; `false` for none. Default 15000. */
  keepalive?: number | false;
  /** The shared timer for heartbeats and timeouts. Default {@link defaultScheduler}. */
  scheduler?: KeepaliveScheduler;
  /** Turns non-string data into text. Default `JSON.stringify`. */
  serialize?: Serializer;
  /**
   * Bound of the outgoing queue while the socket is not draining, in bytes (string length for text:
   * exact for ASCII). Default 262144 (256 KiB).
   */
  highWaterMark?: number;
  /**
   * Past `highWaterMark`: `'close'` ends the stream (the client reconnects and, with a hub, resumes
   * from history) or `'drop'` drops whole oldest queued events. Default `'close'`.
   */
  overflow?: OverflowPolicy;
  /** Close the stream when its socket has not drained for this many ms. Default: no limit. */
  sendTimeout?: number;
  /**
   * Close the stream after this lifetime (ms), jittered to 80–100 % of it, so that clients spread
   * over new instances after a deploy instead of reconnecting all at once. Default: no limit.
   */
  maxAge?: number;
  /** Longest `Last-Event-ID` accepted; longer ones are ignored. Default 512. */
  maxLastEventIdLength?: number;
  /** A group to join (and whose `maxConnections` to respect): a middleware's, a plugin's or a hub's. */
  group?: StreamGroup;
  /** Called each time the overflow policy or the send timeout acts. */
  onOverflow?: (info: OverflowInfo, stream: EventStream) => void;
  /** Receives errors of this stream that no caller could catch (a failing source, a socket error). */
  onError?: (error: unknown, stream: EventStream) => void;
}

/** Options of {@link EventStream.send}. */
export interface SendOptions {
  /** The event type. No CR or LF. */
  event?: string;
  /** The event id. No CR, LF or NUL. */
  id?: string;
  /** A reconnection hint sent with this event. */
  retry?: number;
}

/** Options of {@link EventStream.pipe}. */
export interface PipeOptions<T> {
  /** Turns an item into the event to send. Default: the item is the event's `data`. */
  map?: (item: T) => SseEvent;
  /**
   * Shapes the event sent when the source throws, before the stream ends; return `undefined` to send
   * none. Default: none (the error is reported through `onError`).
   */
  errorEvent?: (error: unknown) => SseEvent | undefined;
  /** Close the stream when the source is done. Default true. */
  end?: boolean;
}

/** Anything {@link EventStream.pipe} can read from. */
export type Source<T> = AsyncIterable<T> | Iterable<T> | ReadableStream<T>;

const STREAM = Symbol('ssekit.stream');
// One Buffer for every heartbeat of every stream: no string-to-bytes encoding per socket write.
const HEARTBEAT_BYTES = Buffer.from(HEARTBEAT);
const OPEN = 0;
const CLOSED = 1;
const MAX_RESOLUTION = 1000;
const DEFAULT_HWM = 256 * 1024;

/** Counters shared by everything that writes, for `hub.stats()` and the benchmark. */
export interface WriteCounters {
  /** Socket writes made. */
  writes: number;
  /** Bytes (string length for text) handed to sockets. */
  bytes: number;
  /** Whole events dropped by the `drop` policy or left unsent when a stream was closed for overflow. */
  dropped: number;
  /** Streams closed because they did not read (overflow `close` or `sendTimeout`). */
  slowClosed: number;
}

/** Process-wide write counters. */
export const writeCounters: WriteCounters = { writes: 0, bytes: 0, dropped: 0, slowClosed: 0 };

/**
 * One open Server-Sent Events response. Create it with {@link createEventStream}; the Express and
 * Fastify adapters hand you one as `res.sse` and `reply.sse()`.
 */
export class EventStream implements Flushable, Tickable, GroupMember {
  /** The request this stream answers. */
  readonly request: SseRequest;
  /** The underlying response. Write to it only through this stream. */
  readonly response: SseResponse;
  /** The id the client last saw (`Last-Event-ID` header, else `lastEventId` query), if valid. */
  readonly lastEventId: string | undefined;

  #state = OPEN;
  #queue: (string | Buffer)[] = [];
  #queueEvents: number[] = [];
  #queuedBytes = 0;
  #scheduled = false;
  #waitingDrain = false;
  #drainSince = 0;
  #held = false;
  #wrote = false;
  #lastActive: number;
  #deadline = 0;
  readonly #keepalive: number;
  readonly #sendTimeout: number;
  readonly #hwm: number;
  readonly #policy: OverflowPolicy;
  readonly #serialize: Serializer;
  readonly #scheduler: KeepaliveScheduler | undefined;
  readonly #flushCompression: (() => void) | undefined;
  readonly #onOverflow: EventStreamOptions['onOverflow'];
  readonly #onError: EventStreamOptions['onError'];
  #controller: AbortController | undefined;
  #closeCallbacks: (() => void)[] | undefined;
  #watchers: CloseWatcher[] | undefined;
  #closed: Promise<void> | undefined;
  #resolveClosed: (() => void) | undefined;
  #readyWaiters: (() => void)[] | undefined;
  #closeReason: unknown;
  #dropped = 0;
  #slow = false;

  /** @internal Use {@link createEventStream}. */
  constructor(req: SseRequest, res: SseResponse, options: EventStreamOptions, lastEventId: string | undefined) {
    this.request = req;
    this.response = res;
    this.lastEventId = lastEventId;
    this.#keepalive = options.keepalive === false ? 0 : (options.keepalive ?? 15_000);
    this.#sendTimeout = options.sendTimeout ?? 0;
    this.#hwm = options.highWaterMark ?? DEFAULT_HWM;
    this.#policy = options.overflow ?? 'close';
    this.#serialize = options.serialize ?? JSON.stringify;
    this.#onOverflow = options.onOverflow;
    this.#onError = options.onError;
    const now = Date.now();
    this.#lastActive = now;
    if (options.maxAge) this.#deadline = now + options.maxAge * (0.8 + 0.2 * Math.random());
    // compression() replaces res.write with a zlib stream that holds data until flushed.
    const flush = (res as { flush?: unknown }).flush;
    this.#flushCompression = typeof flush === 'function' ? (flush.bind(res) as () => void) : undefined;

    const resolution = Math.min(
      this.#keepalive ? this.#keepalive / 4 : MAX_RESOLUTION,
      this.#sendTimeout ? this.#sendTimeout / 4 : MAX_RESOLUTION,
      options.maxAge ? options.maxAge / 40 : MAX_RESOLUTION,
    );
    const needsTimer = this.#keepalive > 0 || this.#sendTimeout > 0 || this.#deadline > 0;
    this.#scheduler = needsTimer ? (options.scheduler ?? defaultScheduler) : undefined;
    this.#scheduler?.add(this, resolution);

    // Shared listeners (one function for all streams, `this` is the response) instead of three
    // closures per stream: idle connections are where memory per stream adds up.
    (res as unknown as Record<symbol, EventStream>)[STREAM] = this;
    res.on('close', EventStream.#responseClosed);
    res.on('error', EventStream.#responseErrored);
    res.on('drain', EventStream.#responseDrained);
  }

  /** True until the stream closes (client gone, `close()`, overflow, or the response ended). */
  get isOpen(): boolean {
    return this.#state === OPEN;
  }

  /** Aborted when the client disconnects or the stream is closed: pass it to fetch, timers, DB calls. */
  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      // Created on first use: an idle connection should not pay for a controller nobody reads.
      this.#controller = new AbortController();
      if (this.#state === CLOSED) this.#controller.abort(this.#closeReason);
    }
    return this.#controller.signal;
  }

  /** Resolves when the stream has closed, for any reason. Never rejects. */
  get closed(): Promise<void> {
    if (this.#closed === undefined) {
      this.#closed =
        this.#state === CLOSED
          ? Promise.resolve()
          : new Promise<void>((resolve) => {
              this.#resolveClosed = resolve;
            });
    }
    return this.#closed;
  }

  /** True while the socket has not drained: wait for {@link ready} before producing more. */
  get needsDrain(): boolean {
    return this.#waitingDrain || this.#queuedBytes >= this.#hwm;
  }

  /** Whole events this stream dropped (policy `drop`) or left unsent when closed for overflow. */
  get droppedEvents(): number {
    return this.#dropped;
  }

  /** True when the stream was closed because its client did not read (overflow `close` or `sendTimeout`). */
  get closedForSlowness(): boolean {
    return this.#slow;
  }

  /** Why the stream closed: `undefined` for a normal close or disconnect, else the error. */
  get closeReason(): unknown {
    return this.#closeReason;
  }

  /** Bytes waiting in this stream's queue (not yet handed to the socket). */
  get queuedBytes(): number {
    return this.#queuedBytes;
  }

  /**
   * Sends one event. Returns `false` (and does nothing) when the stream is closed, else `true`.
   * @throws {SseError} on a bad `event`/`id`/`retry` or unserializable data; the stream stays usable.
   */
  send(data: unknown, options?: SendOptions): boolean {
    if (this.#state !== OPEN) return false;
    const frame =
      options === undefined
        ? encodeData(data, undefined, undefined, this.#serialize)
        : options.retry === undefined
          ? encodeData(data, options.event, options.id, this.#serialize)
          : encode({ data, event: options.event, id: options.id, retry: options.retry }, this.#serialize);
    return this.enqueue(frame, 1);
  }

  /** Sends a whole event object (`data`, `event`, `id`, `retry`, `comment`). Same contract as {@link send}. */
  sendEvent(event: SseEvent): boolean {
    if (this.#state !== OPEN) return false;
    return this.enqueue(encode(event, this.#serialize), event.data === undefined ? 0 : 1);
  }

  /** Sends a comment (ignored by clients). Returns `false` when closed. */
  comment(text: string): boolean {
    if (this.#state !== OPEN) return false;
    return this.enqueue(encodeComment(text), 0);
  }

  /**
   * Queues an already encoded frame (or several, counted as `events`). The hub uses it to write the
   * same string or Buffer to every subscriber; it is public so that apps can do the same.
   */
  enqueue(frame: string | Buffer, events = 1): boolean {
    if (this.#state !== OPEN) return false;
    this.#queue.push(frame);
    this.#queueEvents.push(events);
    this.#queuedBytes += frame.length;
    if (this.#waitingDrain || this.#held) {
      if (this.#queuedBytes > this.#hwm) this.#overflow('policy');
    } else if (!this.#scheduled) {
      this.#scheduled = true;
      scheduleFlush(this);
    }
    return this.#state === OPEN;
  }

  /**
   * Writes `chunk` at once if nothing is queued ahead of it and the socket is draining, else queues it.
   * For writers that already coalesced a turn's frames (the hub, during the flush pass).
   * @internal
   */
  writeNow(chunk: string | Buffer, events: number): void {
    if (this.#state !== OPEN) return;
    if (this.#queue.length > 0 || this.#waitingDrain || this.#held) {
      this.enqueue(chunk, events);
      return;
    }
    this.#write(chunk);
  }

  /**
   * Holds writes back (they queue) until {@link release}: the hub holds a resuming stream while it
   * reads history, so live events published meanwhile wait behind the replay.
   * @internal
   */
  hold(): void {
    this.#held = true;
  }

  /** Writes `first` (the replay), then what queued while held. @internal */
  release(first: string | undefined, events = 0): void {
    if (!this.#held) return;
    this.#held = false;
    if (this.#state !== OPEN) return;
    if (first) {
      this.#queue.unshift(first);
      // Counted, so that a `drop` of the replay is reported like any other dropped event.
      this.#queueEvents.unshift(events);
      this.#queuedBytes += first.length;
    }
    this.flush();
  }

  /**
   * Resolves once the stream can take more without growing its queue (or has closed): how a producer
   * paces itself to the client. Resolves `true` when open, `false` when closed.
   */
  ready(): Promise<boolean> {
    if (this.#state !== OPEN) return Promise.resolve(false);
    if (!this.needsDrain) return Promise.resolve(true);
    return new Promise<boolean>((resolve) => {
      this.#readyWaiters ??= [];
      this.#readyWaiters.push(() => resolve(this.#state === OPEN));
    });
  }

  /**
   * Sends every item of `source` as an event, pulling the next item only when the queue has room.
   * When the client leaves, the source is stopped (`return()` on iterators, `destroy()` on Node
   * streams, `cancel()` on web streams). When the source throws, this stream alone ends (after the
   * optional `errorEvent`) and the error goes to `onError`. The promise never rejects.
   */
  async pipe<T>(source: Source<T>, options: PipeOptions<T> = {}): Promise<void> {
    let iterator: AsyncIterator<T> | Iterator<T>;
    try {
      iterator = toIterator(source);
    } catch (err) {
      this.#report(
        new SseError('ERR_SSE_SOURCE', `cannot read this source: ${(err as Error).message}`, { cause: err }),
      );
      this.close();
      return;
    }
    let finished = false;
    const stop = (): void => {
      if (finished) return;
      finished = true;
      // Don't wait: an async generator parked in `await` queues the return behind it.
      Promise.resolve()
        .then(() => iterator.return?.())
        .catch((err) => this.#report(err));
    };
    const offClose = this.onClose(stop);
    try {
      while (this.#state === OPEN) {
        if (this.needsDrain && !(await this.ready())) break;
        const step = await iterator.next();
        if (step.done) {
          finished = true;
          break;
        }
        if (this.#state !== OPEN) break;
        if (options.map) this.sendEvent(options.map(step.value));
        else this.send(step.value);
      }
      if (finished && options.end !== false) this.close();
    } catch (err) {
      finished = true;
      // Stopped because the client left: a destroyed Readable then rejects its pending read with a
      // premature-close error, which is our doing, not the source's failure.
      if (this.#state !== OPEN) return;
      const error = new SseError('ERR_SSE_SOURCE', `the piped source failed: ${(err as Error)?.message ?? err}`, {
        cause: err,
      });
      if (options.errorEvent && this.#state === OPEN) {
        try {
          const event = options.errorEvent(err);
          if (event) this.sendEvent(event);
        } catch (shapeError) {
          this.#report(shapeError);
        }
      }
      this.#report(error);
      this.close();
    } finally {
      offClose();
      if (!finished) stop();
    }
  }

  /**
   * Registers `callback` for when the stream closes (runs at once if it already has). Returns a
   * function that unregisters it.
   */
  onClose(callback: () => void): () => void {
    if (this.#state === CLOSED) {
      callback();
      return noop;
    }
    if (this.#closeCallbacks === undefined) this.#closeCallbacks = [];
    const callbacks = this.#closeCallbacks;
    callbacks.push(callback);
    return () => {
      const i = callbacks.indexOf(callback);
      if (i !== -1) callbacks.splice(i, 1);
    };
  }

  /** @internal Registers a group or hub to be told when this stream closes (no closure per stream). */
  watchClose(watcher: CloseWatcher): void {
    if (this.#state === CLOSED) {
      watcher.memberClosed(this);
      return;
    }
    if (this.#watchers === undefined) this.#watchers = [watcher];
    else if (!this.#watchers.includes(watcher)) this.#watchers.push(watcher);
  }

  /** @internal */
  unwatchClose(watcher: CloseWatcher): void {
    const i = this.#watchers?.indexOf(watcher) ?? -1;
    if (i !== -1) this.#watchers?.splice(i, 1);
  }

  /**
   * Ends the response after writing what is queued. The client sees the stream end and, being an
   * `EventSource`, reconnects (after `retry` ms when given). Idempotent.
   */
  close(options?: CloseOptions): void {
    if (this.#state !== OPEN) return;
    if (options?.retry !== undefined) {
      const hint = encodeRetry(options.retry);
      this.#queue.push(hint);
      this.#queueEvents.push(0);
      this.#queuedBytes += hint.length;
    }
    // What is queued goes out even if the socket is behind: it is bounded, and end() must follow it.
    this.#held = false;
    this.#waitingDrain = false;
    this.flush();
    // The write above may have found the socket full again: the client is behind.
    const behind = this.#waitingDrain;
    this.#teardown(undefined);
    this.#end();
    if (behind) this.#reapIfStalled();
  }

  /**
   * A stream closed while its client is not reading would hold its socket (timeouts are off) until the
   * client reads again, and keep `server.close()` waiting. Give it `sendTimeout` (default 30 s) to
   * take the rest, then drop the connection; the shared scheduler does the waiting.
   */
  #reapIfStalled(): void {
    const res = this.response;
    const scheduler = this.#scheduler ?? defaultScheduler;
    const deadline = Date.now() + (this.#sendTimeout || 30_000);
    const reaper: Tickable = {
      tick(now) {
        if (res.writableFinished || res.destroyed || (res as Http2ServerResponse).stream?.destroyed) {
          scheduler.delete(reaper);
        } else if (now >= deadline) {
          scheduler.delete(reaper);
          res.destroy();
        }
      },
    };
    scheduler.add(reaper, Math.min(MAX_RESOLUTION, (this.#sendTimeout || 30_000) / 4));
  }

  /** Scheduler tick: maximum age, send timeout, heartbeat. @internal */
  tick(now: number): void {
    if (this.#state !== OPEN) return;
    if (this.#deadline && now >= this.#deadline) {
      this.close();
      return;
    }
    if (this.#waitingDrain) {
      if (this.#sendTimeout && now - this.#drainSince >= this.#sendTimeout) this.#overflow('timeout');
      return;
    }
    if (this.#wrote) {
      this.#wrote = false;
      this.#lastActive = now;
      return;
    }
    if (this.#keepalive && now - this.#lastActive >= this.#keepalive - 1 && !this.#held && this.#queue.length === 0) {
      this.#lastActive = now;
      this.#write(HEARTBEAT_BYTES);
    }
  }

  /** Writes the queue out in one write. Called by the turn's flush pass. @internal */
  flush(): void {
    this.#scheduled = false;
    if (this.#state !== OPEN || this.#waitingDrain || this.#held || this.#queue.length === 0) return;
    const queue = this.#queue;
    const chunk = queue.length === 1 ? (queue[0] as string | Buffer) : join(queue);
    // Emptied in place: no new arrays per flush.
    queue.length = 0;
    this.#queueEvents.length = 0;
    this.#queuedBytes = 0;
    this.#write(chunk);
    // A producer may be waiting in ready() because this turn's queue reached highWaterMark while the
    // socket was draining; if the write was taken whole, no 'drain' will come to wake it.
    if (this.#readyWaiters !== undefined && !this.needsDrain) this.#wakeReady();
  }

  #write(chunk: string | Buffer): void {
    this.#wrote = true;
    writeCounters.writes++;
    writeCounters.bytes += chunk.length;
    let ok: boolean;
    try {
      ok = (this.response as ServerResponse).write(chunk);
      this.#flushCompression?.();
    } catch (err) {
      this.#onResponseError(err as Error);
      return;
    }
    if (!ok && this.#state === OPEN) {
      this.#waitingDrain = true;
      this.#drainSince = Date.now();
    }
  }

  static readonly #responseClosed = function (this: SseResponse): void {
    const stream = (this as unknown as Record<symbol, EventStream | undefined>)[STREAM];
    if (stream !== undefined) stream.#teardown(undefined);
  };

  static readonly #responseErrored = function (this: SseResponse, err: Error): void {
    const stream = (this as unknown as Record<symbol, EventStream | undefined>)[STREAM];
    if (stream !== undefined) stream.#onResponseError(err);
  };

  static readonly #responseDrained = function (this: SseResponse): void {
    const stream = (this as unknown as Record<symbol, EventStream | undefined>)[STREAM];
    if (stream !== undefined) stream.#onDrain();
  };

  #onDrain(): void {
    if (!this.#waitingDrain) return;
    this.#waitingDrain = false;
    if (this.#queue.length > 0) this.flush();
    if (!this.needsDrain && this.#readyWaiters !== undefined) this.#wakeReady();
  }

  #wakeReady(): void {
    const waiters = this.#readyWaiters;
    this.#readyWaiters = undefined;
    if (waiters !== undefined) for (const wake of waiters) wake();
  }

  #overflow(cause: 'policy' | 'timeout'): void {
    const events = sum(this.#queueEvents);
    const info: OverflowInfo = {
      policy: cause === 'timeout' ? 'timeout' : this.#policy,
      droppedEvents: 0,
      queuedBytes: this.#queuedBytes,
    };
    if (cause === 'policy' && this.#policy === 'drop') {
      // Drop whole queued frames, oldest first, down to the bound; what the socket holds is untouched,
      // so the client never sees a partial frame.
      let dropped = 0;
      while (this.#queuedBytes > this.#hwm && this.#queue.length > 1) {
        this.#queuedBytes -= (this.#queue.shift() as string | Buffer).length;
        dropped += this.#queueEvents.shift() as number;
      }
      info.droppedEvents = dropped;
      this.#dropped += dropped;
      writeCounters.dropped += dropped;
    } else {
      info.droppedEvents = events;
      this.#dropped += events;
      this.#slow = true;
      writeCounters.dropped += events;
      writeCounters.slowClosed++;
      const error = new SseError(
        cause === 'timeout' ? 'ERR_SSE_SEND_TIMEOUT' : 'ERR_SSE_OVERFLOW',
        cause === 'timeout'
          ? `the client did not read for ${this.#sendTimeout} ms`
          : `the client did not read: ${this.#queuedBytes} bytes queued (highWaterMark ${this.#hwm})`,
      );
      this.#queue = [];
      this.#queueEvents = [];
      this.#queuedBytes = 0;
      this.#teardown(error);
      // The client is not reading, so a graceful end would never finish: drop the connection.
      this.response.destroy();
    }
    if (this.#onOverflow) {
      try {
        this.#onOverflow(info, this);
      } catch (err) {
        this.#report(err);
      }
    }
  }

  #onResponseError(err: Error): void {
    // ECONNRESET and friends mean the client left: that is a close, not an error worth reporting.
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ECONNRESET' && code !== 'EPIPE' && code !== 'ERR_STREAM_DESTROYED') this.#report(err);
    this.#teardown(err);
  }

  #end(): void {
    try {
      this.response.end();
    } catch (err) {
      this.#report(err);
    }
  }

  #report(err: unknown): void {
    if (this.#onError) {
      try {
        this.#onError(err, this);
        return;
      } catch (reportError) {
        err = reportError;
      }
    }
    console.error('[ssekit]', err);
  }

  #teardown(reason: unknown): void {
    if (this.#state === CLOSED) return;
    this.#state = CLOSED;
    this.#closeReason = reason;
    this.#scheduler?.delete(this);
    this.response.off('drain', EventStream.#responseDrained);
    this.#controller?.abort(reason);
    const watchers = this.#watchers;
    this.#watchers = undefined;
    if (watchers !== undefined) {
      for (const watcher of watchers) {
        try {
          watcher.memberClosed(this);
        } catch (err) {
          this.#report(err);
        }
      }
    }
    const callbacks = this.#closeCallbacks;
    this.#closeCallbacks = undefined;
    if (callbacks !== undefined) {
      for (const callback of callbacks) {
        try {
          callback();
        } catch (err) {
          this.#report(err);
        }
      }
    }
    this.#resolveClosed?.();
    const waiters = this.#readyWaiters;
    this.#readyWaiters = undefined;
    if (waiters !== undefined) for (const wake of waiters) wake();
  }
}

/**
 * Opens a Server-Sent Events stream on a `node:http` or `node:http2` (compat) response: writes status
 * 200 and the SSE headers at once, turns off socket timeouts and Nagle, and returns the stream.
 *
 * @throws {SseError} `ERR_SSE_HEADERS_SENT` when the response has started;
 * `ERR_SSE_TOO_MANY_CONNECTIONS` (503) when `options.group` is full; `ERR_SSE_INVALID_OPTION`.
 * Nothing is written when it throws, so the caller can still answer.
 */
export function createEventStream(req: SseRequest, res: SseResponse, options: EventStreamOptions = {}): EventStream {
  validateOptions(options);
  if (res.headersSent) {
    throw new SseError('ERR_SSE_HEADERS_SENT', 'the response has already started; open the stream before writing');
  }
  options.group?.admit();

  const http2 = req.httpVersionMajor >= 2;
  const status = options.status ?? 200;
  // Ours, unless the app chose otherwise (CORS, auth and the like are never touched).
  const head: [string, string | number | readonly string[]][] = [['Content-Type', 'text/event-stream; charset=utf-8']];
  if (!res.hasHeader('Cache-Control')) head.push(['Cache-Control', 'no-cache, no-transform']);
  if (!res.hasHeader('X-Accel-Buffering')) head.push(['X-Accel-Buffering', 'no']);
  // HTTP/2 forbids connection-specific headers.
  if (http2) res.removeHeader('Connection');
  else head.push(['Connection', 'keep-alive']);
  if (options.headers) {
    for (const name of Object.keys(options.headers)) head.push([name, options.headers[name] as string]);
  }
  // A zero-length body would let Node send Content-Length: 0; make sure nothing like that is set.
  res.removeHeader('Content-Length');
  if (!http2 && res.writeHead === ServerResponse.prototype.writeHead) {
    // Handing node:http the headers as one flat list keeps no per-response header object alive for
    // the life of the stream (what setHeader() would), and Node merges any the app set before.
    const flat: (string | number | readonly string[])[] = [];
    for (const [name, value] of head) {
      if (Array.isArray(value)) for (const v of value) flat.push(name, v);
      else flat.push(name, value);
    }
    (res as ServerResponse).writeHead(status, flat as string[]);
  } else {
    // HTTP/2, or a writeHead() patched by middleware (compression's on-headers reads setHeader()s).
    for (const [name, value] of head) res.setHeader(name, value);
    res.writeHead(status);
  }
  if (http2) {
    (res as Http2ServerResponse).setTimeout(0);
  } else {
    // Optional calls: Fastify's inject() and other in-process requests have a socket without them.
    const socket = (req as IncomingMessage).socket as Partial<import('node:net').Socket> | undefined;
    socket?.setTimeout?.(0);
    socket?.setNoDelay?.(true);
  }
  // Both responses have flushHeaders(); @types/node only declares it on node:http's.
  (res as ServerResponse).flushHeaders();

  const stream = new EventStream(req, res, options, readLastEventId(req, options.maxLastEventIdLength ?? 512));
  if (req.method === 'HEAD') {
    // A HEAD answer has no body: the headers are the whole answer, so the stream ends at once.
    stream.close();
    return stream;
  }
  allStreams.add(stream);
  options.group?.add(stream);
  if (options.retry !== undefined) stream.enqueue(encodeRetry(options.retry), 0);
  // The response may already be gone (the client left while middleware ran).
  if (res.destroyed || (res as ServerResponse).socket?.destroyed) stream.close();
  return stream;
}

/**
 * Answers 204 No Content: the only answer that makes `EventSource` stop reconnecting for good (any
 * other status fails the connection too, but 204 says "nothing more", not "error"). For logged-out
 * users and finished jobs.
 */
export function refuse(res: SseResponse): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  res.statusCode = 204;
  res.end();
}

/** Flushes every stream's queued frames now instead of at the end of the turn. */
export function flushAll(): void {
  flushQueued();
}

const INVALID_ID = /[\0\r\n\uFFFD]/;
const NON_ASCII = /[^\x00-\x7f]/;

/**
 * The client's last event id: the `Last-Event-ID` header, else the `lastEventId` query parameter (what
 * polyfills that cannot set headers send). Empty, too long, or holding NUL/CR/LF or invalid UTF-8: ignored.
 */
export function readLastEventId(req: SseRequest, maxLength = 512): string | undefined {
  let value: string | undefined;
  const header = req.headers['last-event-id'];
  if (typeof header === 'string' && header !== '') {
    // Node reads header bytes as latin1; browsers send the id as UTF-8.
    value = NON_ASCII.test(header) ? Buffer.from(header, 'latin1').toString('utf8') : header;
  } else {
    const url = req.url ?? '';
    const q = url.indexOf('?');
    if (q !== -1 && url.includes('lastEventId', q)) {
      try {
        value = new URLSearchParams(url.slice(q + 1)).get('lastEventId') ?? undefined;
      } catch {
        value = undefined;
      }
    }
  }
  if (value === undefined || value === '' || value.length > maxLength || INVALID_ID.test(value)) return undefined;
  return value;
}

/**
 * Checks stream options the way {@link createEventStream} does, so that adapters can reject bad
 * options once, when the middleware or plugin is created, instead of on every request.
 * @throws {SseError} `ERR_SSE_INVALID_OPTION`.
 */
export function validateStreamOptions(options: EventStreamOptions): void {
  validateOptions(options);
}

function validateOptions(options: EventStreamOptions): void {
  const positive = (name: string, value: unknown, allowFalse = false): void => {
    if (value === undefined || (allowFalse && value === false)) return;
    if (typeof value !== 'number' || !(value > 0) || !Number.isFinite(value)) {
      throw new SseError('ERR_SSE_INVALID_OPTION', `${name} must be a positive number of ms, got ${String(value)}`);
    }
  };
  if (typeof options !== 'object' || options === null) {
    throw new SseError('ERR_SSE_INVALID_OPTION', 'options must be an object');
  }
  positive('keepalive', options.keepalive, true);
  positive('sendTimeout', options.sendTimeout);
  positive('maxAge', options.maxAge);
  positive('highWaterMark', options.highWaterMark);
  positive('maxLastEventIdLength', options.maxLastEventIdLength);
  for (const name of ['serialize', 'onOverflow', 'onError'] as const) {
    if (options[name] !== undefined && typeof options[name] !== 'function') {
      throw new SseError('ERR_SSE_INVALID_OPTION', `${name} must be a function`);
    }
  }
  if (options.scheduler !== undefined && typeof options.scheduler?.add !== 'function') {
    throw new SseError('ERR_SSE_INVALID_OPTION', 'scheduler must be a KeepaliveScheduler');
  }
  if (options.group !== undefined && typeof options.group?.admit !== 'function') {
    throw new SseError('ERR_SSE_INVALID_OPTION', 'group must be a StreamGroup');
  }
  if (options.overflow !== undefined && options.overflow !== 'close' && options.overflow !== 'drop') {
    throw new SseError('ERR_SSE_INVALID_OPTION', `overflow must be 'close' or 'drop', got ${String(options.overflow)}`);
  }
  // A bad option is the caller's mistake, reported with the option code (not the encoder's field code).
  if (options.retry !== undefined && !(Number.isSafeInteger(options.retry) && options.retry >= 0)) {
    throw new SseError('ERR_SSE_INVALID_OPTION', `retry must be a non-negative integer, got ${String(options.retry)}`);
  }
  // writeHead() throws a RangeError past 999, after our headers were set: refuse it before touching `res`.
  if (
    options.status !== undefined &&
    !(Number.isInteger(options.status) && options.status >= 200 && options.status <= 599)
  ) {
    throw new SseError(
      'ERR_SSE_INVALID_OPTION',
      `status must be an HTTP status from 200 to 599, got ${String(options.status)}`,
    );
  }
  if (options.headers !== undefined && (typeof options.headers !== 'object' || options.headers === null)) {
    throw new SseError('ERR_SSE_INVALID_OPTION', 'headers must be an object');
  }
  if (options.headers) {
    for (const [name, value] of Object.entries(options.headers)) {
      for (const v of Array.isArray(value) ? value : [value]) {
        if (/[\r\n\0]/.test(String(v))) {
          throw new SseError('ERR_SSE_INVALID_OPTION', `header ${name} must not contain CR, LF or NUL`);
        }
      }
      // Otherwise setHeader() would throw Node's own TypeError half-way through setting our headers.
      try {
        validateHeaderName(name);
        for (const v of Array.isArray(value) ? value : [value]) validateHeaderValue(name, String(v));
      } catch (cause) {
        throw new SseError('ERR_SSE_INVALID_OPTION', `header ${JSON.stringify(name)}: ${(cause as Error).message}`, {
          cause,
        });
      }
    }
  }
}

function toIterator<T>(source: Source<T>): AsyncIterator<T> | Iterator<T> {
  // Web streams and Node Readables are async iterable too, but their iterators queue `return()` behind a
  // pending `next()` (as the streams spec and Node's async-generator iterator require): a source that
  // went quiet would never be stopped when the client leaves. So they get iterators whose `return()`
  // cancels or destroys at once.
  const web = source as ReadableStream<T>;
  if (typeof web.getReader === 'function') {
    const reader = web.getReader();
    return {
      next: () => reader.read() as Promise<IteratorResult<T>>,
      return: async () => {
        await reader.cancel();
        return { done: true, value: undefined };
      },
    };
  }
  const asyncIterable = source as AsyncIterable<T>;
  if (typeof asyncIterable[Symbol.asyncIterator] === 'function') {
    const iterator = asyncIterable[Symbol.asyncIterator]();
    const readable = source as { destroy?: unknown; pipe?: unknown };
    if (typeof readable.destroy !== 'function' || typeof readable.pipe !== 'function') return iterator;
    const destroy = readable.destroy.bind(source) as () => void;
    return {
      next: () => iterator.next(),
      return: async () => {
        destroy();
        return { done: true, value: undefined };
      },
    };
  }
  const iterable = source as Iterable<T>;
  if (typeof iterable[Symbol.iterator] === 'function') return iterable[Symbol.iterator]();
  throw new TypeError('expected an AsyncIterable, an Iterable, a Node Readable or a web ReadableStream');
}

function join(chunks: (string | Buffer)[]): string | Buffer {
  let allStrings = true;
  for (const chunk of chunks) {
    if (typeof chunk !== 'string') {
      allStrings = false;
      break;
    }
  }
  if (allStrings) return (chunks as string[]).join('');
  return Buffer.concat(chunks.map((c) => (typeof c === 'string' ? Buffer.from(c) : c)));
}

function sum(values: number[]): number {
  let total = 0;
  for (const v of values) total += v;
  return total;
}

function noop(): void {}
