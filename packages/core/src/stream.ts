/**
 * The event stream: one open `text/event-stream` response, over any {@link Transport}.
 *
 * Data path: `send()` encodes once (frame.ts) and queues the frame; at the end of the turn the queue
 * leaves in ONE `write()` (flush.ts). `write()`'s result is always honoured: while the client has not
 * drained, frames wait in a queue bounded by `highWaterMark`, past which the overflow policy applies
 * (`close`, or `drop` whole oldest events). Heartbeats and timeouts come from the one shared scheduler
 * (keepalive.ts). The transport says when the client is gone; that becomes `signal`, `onClose` and
 * `closed`.
 */
import { SseError } from './errors.js';
import { type FlushFn, scheduleFlush } from './flush.js';
import { encode, encodeComment, encodeData, encodeRetry, HEARTBEAT, type SseEvent } from './frame.js';
import type { CloseOptions, CloseWatcher, GroupMember } from './group.js';
import { defaultScheduler, KeepaliveScheduler, type TickFn } from './keepalive.js';
import type { EventStreamOptions, OverflowPolicy } from './options.js';
import { type PipeOptions, pipeSource, type Source } from './pipe.js';
import { OutgoingQueue } from './queue.js';
import { type Chunk, RUNTIME, sizeOf, utf8 } from './runtime.js';
import type { Transport, TransportEvents } from './transport.js';

/** Options of {@link EventStream.send}. */
export interface SendOptions {
  /** The event type. No CR or LF. */
  event?: string;
  /** The event id. No CR, LF or NUL. */
  id?: string;
  /** A reconnection hint sent with this event. */
  retry?: number;
}

/**
 * What a hub needs of a subscriber: an open stream it can write coalesced chunks to, hold back while
 * it reads a replay, and be told about when it closes. {@link EventStream} is one; anything else that
 * implements it can be subscribed too.
 */
export interface Subscriber extends GroupMember {
  /** True until the subscriber closes. */
  readonly isOpen: boolean;
  /** Where the client asks to resume from, if anywhere. */
  readonly lastEventId: string | undefined;
  /** Whole events dropped or left unsent so far. */
  readonly droppedEvents: number;
  /** True when it was closed because its client did not read. */
  readonly closedForSlowness: boolean;
  /**
   * True while a write would go out now: open, not held, nothing queued, and the client not behind. A
   * hub writes to a subscriber only then, and is told through `memberWritable` when it is again.
   */
  readonly writable: boolean;
  /** Queues an encoded chunk holding `events` events, to leave with this turn's writes. */
  enqueue(chunk: Chunk, events?: number): boolean;
  /**
   * Writes a chunk already coalesced for this turn: at once when nothing waits ahead of it and the
   * client is reading, else behind what waits.
   */
  deliver(chunk: Chunk, events: number): void;
  /** Holds writes back (they queue) until {@link release}: live events wait behind a replay being read. */
  hold(): void;
  /** Writes `first` (the replay), then what queued while held. */
  release(first: Chunk | undefined, events: number): void;
}

// One Buffer for every heartbeat of every stream: no text-to-bytes encoding per socket write.
const HEARTBEAT_BYTES = utf8(HEARTBEAT);
const OPEN = 0;
const CLOSED = 1;
const MAX_RESOLUTION = 1000;
const DEFAULT_HWM = 256 * 1024;
// Bun.serve() closes a response idle for its idleTimeout (10 s by default): heartbeats come sooner.
const DEFAULT_KEEPALIVE = RUNTIME.bun ? 8000 : 15_000;
/** A client that takes nothing for this long is stalled, and its connection is reset. */
const DEFAULT_SEND_TIMEOUT = 30_000;

/**
 * One open Server-Sent Events response. Open one with `createEventStream(req, res)` on `node:http`,
 * or through an adapter: `res.sse` (Express), `reply.sse()` (Fastify), `sse(request, stream => …)`
 * (fetch handlers).
 */
export class EventStream implements Subscriber {
  /** The id the client last saw (`Last-Event-ID` header, else `lastEventId` query), if valid. */
  readonly lastEventId: string | undefined;

  readonly #transport: Transport;
  #state = OPEN;
  readonly #queue = new OutgoingQueue();
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
  readonly #options: EventStreamOptions;
  readonly #scheduler: KeepaliveScheduler;
  readonly #resolution: number;
  #ticking = false;
  #controller: AbortController | undefined;
  #closeCallbacks: (() => void)[] | undefined;
  #watchers: CloseWatcher[] | undefined;
  #closed: Promise<void> | undefined;
  #resolveClosed: (() => void) | undefined;
  #readyWaiters: (() => void)[] | undefined;
  #closeReason: unknown;
  #dropped = 0;
  #slow = false;

  /**
   * A stream over an already opened `transport` (status and headers sent). Adapters and
   * `createEventStream()` open the transport and create the stream; apps rarely call this.
   */
  constructor(transport: Transport, options: EventStreamOptions = {}, lastEventId?: string) {
    this.#transport = transport;
    this.lastEventId = lastEventId;
    // Kept whole rather than copied field by field: every stream of a route shares one options object.
    this.#options = options;
    this.#keepalive = options.keepalive === false ? 0 : (options.keepalive ?? DEFAULT_KEEPALIVE);
    this.#sendTimeout = options.sendTimeout ?? DEFAULT_SEND_TIMEOUT;
    this.#hwm = options.highWaterMark ?? DEFAULT_HWM;
    this.#policy = options.overflow ?? 'close';
    const now = Date.now();
    this.#lastActive = now;
    if (options.maxAge) this.#deadline = now + options.maxAge * (0.8 + 0.2 * Math.random());
    const resolution = Math.min(
      this.#keepalive ? this.#keepalive / 4 : MAX_RESOLUTION,
      this.#sendTimeout ? this.#sendTimeout / 4 : MAX_RESOLUTION,
      options.maxAge ? options.maxAge / 40 : MAX_RESOLUTION,
    );
    // On workerd a timer belongs to the request that started it and dies with it, and a request with
    // nothing pending is ended as hung: each stream ticks from a timer of its own request (the
    // runtime's rule; everywhere else one timer serves every stream).
    this.#scheduler = options.scheduler ?? (RUNTIME.workerd ? new KeepaliveScheduler() : defaultScheduler);
    this.#resolution = resolution;
    // The send timeout alone needs no tick until the client falls behind (#write joins then).
    if (this.#keepalive > 0 || this.#deadline > 0) this.#join();
    transport.bind(EventStream.#events, this);
  }

  /** The transport under this stream (a `NodeTransport` has the `request` and `response`). */
  get transport(): Transport {
    return this.#transport;
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

  /** See {@link Subscriber.writable}. */
  get writable(): boolean {
    return this.#state === OPEN && !this.#waitingDrain && !this.#held && this.#queue.length === 0;
  }

  /** True while the client has not drained: wait for {@link ready} before producing more. */
  get needsDrain(): boolean {
    return this.#waitingDrain || this.#queue.bytes >= this.#hwm;
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

  /** Bytes waiting in this stream's queue (not yet handed to the transport). */
  get queuedBytes(): number {
    return this.#queue.bytes;
  }

  /**
   * Sends one event. Returns `false` (and does nothing) when the stream is closed, else `true`.
   * @throws {SseError} on a bad `event`/`id`/`retry` or unserializable data; the stream stays usable.
   */
  send(data: unknown, options?: SendOptions): boolean {
    if (this.#state !== OPEN) return false;
    const serialize = this.#options.serialize;
    const frame =
      options === undefined
        ? encodeData(data, undefined, undefined, serialize)
        : options.retry === undefined
          ? encodeData(data, options.event, options.id, serialize)
          : encode({ data, event: options.event, id: options.id, retry: options.retry }, serialize);
    return this.enqueue(frame, 1);
  }

  /** Sends a whole event object (`data`, `event`, `id`, `retry`, `comment`). Same contract as {@link send}. */
  sendEvent(event: SseEvent): boolean {
    if (this.#state !== OPEN) return false;
    return this.enqueue(encode(event, this.#options.serialize), event.data === undefined ? 0 : 1);
  }

  /** Sends a comment (ignored by clients). Returns `false` when closed. */
  comment(text: string): boolean {
    if (this.#state !== OPEN) return false;
    return this.enqueue(encodeComment(text), 0);
  }

  /**
   * Queues an already encoded frame (or several, counted as `events`) to leave with this turn's
   * writes. The hub uses it to write the same text or bytes to every subscriber; apps can do the same.
   */
  enqueue(frame: Chunk, events = 1): boolean {
    if (this.#state !== OPEN) return false;
    this.#queue.push(frame, events);
    if (this.#waitingDrain || this.#held) {
      if (this.#queue.bytes > this.#hwm) this.#overflow('policy');
    } else if (!this.#scheduled) {
      this.#scheduled = true;
      scheduleFlush(EventStream.#flush, this);
    }
    return this.#state === OPEN;
  }

  /** See {@link Subscriber.deliver}. */
  deliver(chunk: Chunk, events: number): void {
    if (this.#state !== OPEN) return;
    if (this.#queue.length > 0 || this.#waitingDrain || this.#held) {
      this.enqueue(chunk, events);
      return;
    }
    this.#write(chunk);
  }

  /** See {@link Subscriber.hold}. */
  hold(): void {
    this.#held = true;
  }

  /** See {@link Subscriber.release}. */
  release(first: Chunk | undefined, events = 0): void {
    if (!this.#held) return;
    this.#held = false;
    if (this.#state !== OPEN) return;
    // Counted, so that a `drop` of the replay is reported like any other dropped event.
    if (first !== undefined && sizeOf(first) > 0) this.#queue.unshift(first, events);
    this.flush();
    if (this.writable) this.#notifyWritable();
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
   * streams, `cancel()` on web streams). When the source throws — anything at all — this stream alone
   * ends (after the optional `errorEvent`) and the error goes to `onError`. The promise never rejects.
   */
  pipe<T>(source: Source<T>, options: PipeOptions<T> = {}): Promise<void> {
    return pipeSource(this, source, options, (error) => this.#report(error));
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

  /** See {@link GroupMember.watchClose}. */
  watchClose(watcher: CloseWatcher): void {
    if (this.#state === CLOSED) {
      watcher.memberClosed(this);
      return;
    }
    if (this.#watchers === undefined) this.#watchers = [watcher];
    else if (!this.#watchers.includes(watcher)) this.#watchers.push(watcher);
  }

  /** See {@link GroupMember.unwatchClose}. */
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
    if (options?.retry !== undefined) this.#queue.push(encodeRetry(options.retry), 0);
    // What is queued goes out even if the client is behind: it is bounded, and end() must follow it.
    const wasBehind = this.#waitingDrain;
    this.#held = false;
    this.#waitingDrain = false;
    this.flush();
    // The client was behind, or the write above found it behind again.
    const behind = wasBehind || this.#waitingDrain;
    this.#teardown(undefined);
    this.#transport.end();
    if (behind) this.#reapIfStalled();
  }

  /** Writes what is queued now, in one write, instead of at the end of the turn. */
  flush(): void {
    this.#scheduled = false;
    if (this.#state !== OPEN || this.#waitingDrain || this.#held || this.#queue.length === 0) return;
    this.#write(this.#queue.take());
    // A producer may be waiting in ready() because this turn's queue reached highWaterMark while the
    // client was draining; if the write was taken whole, no drain will come to wake it.
    if (this.#readyWaiters !== undefined && !this.needsDrain) this.#wakeReady();
    if (this.writable) this.#notifyWritable();
  }

  static readonly #flush: FlushFn<EventStream> = (stream) => stream.flush();

  // Scheduler tick: maximum age, send timeout, heartbeat.
  static readonly #tick: TickFn<EventStream> = (stream, now) => {
    if (stream.#state !== OPEN) return;
    if (stream.#deadline && now >= stream.#deadline) {
      stream.close();
      return;
    }
    if (stream.#waitingDrain) {
      if (stream.#sendTimeout && now - stream.#drainSince >= stream.#sendTimeout) stream.#overflow('timeout');
      return;
    }
    if (stream.#wrote) {
      stream.#wrote = false;
      stream.#lastActive = now;
      return;
    }
    if (
      stream.#keepalive &&
      now - stream.#lastActive >= stream.#keepalive - 1 &&
      !stream.#held &&
      stream.#queue.length === 0
    ) {
      stream.#lastActive = now;
      stream.#write(HEARTBEAT_BYTES);
    }
  };

  static readonly #events: TransportEvents<EventStream> = {
    drained(stream) {
      stream.#onDrain();
    },
    gone(stream, error) {
      stream.#onGone(error);
    },
  };

  #write(chunk: Chunk): void {
    this.#wrote = true;
    const ok = this.#transport.write(chunk);
    if (!ok && this.#state === OPEN) {
      this.#waitingDrain = true;
      this.#drainSince = Date.now();
      if (!this.#ticking && this.#sendTimeout > 0) this.#join();
    }
  }

  #join(): void {
    this.#ticking = true;
    this.#scheduler.add(this, this.#resolution, EventStream.#tick);
  }

  #onDrain(): void {
    if (!this.#waitingDrain) return;
    this.#waitingDrain = false;
    if (this.#queue.length > 0) this.flush();
    if (!this.needsDrain && this.#readyWaiters !== undefined) this.#wakeReady();
    if (this.writable) this.#notifyWritable();
  }

  #notifyWritable(): void {
    const watchers = this.#watchers;
    if (watchers === undefined) return;
    for (const watcher of watchers) {
      try {
        watcher.memberWritable?.(this);
      } catch (err) {
        this.#report(err);
      }
    }
  }

  #onGone(error: unknown): void {
    // ECONNRESET and friends mean the client left: that is a close, not an error worth reporting.
    const code = (error as { code?: unknown } | undefined)?.code;
    if (error !== undefined && code !== 'ECONNRESET' && code !== 'EPIPE' && code !== 'ERR_STREAM_DESTROYED') {
      this.#report(error);
    }
    this.#teardown(error);
  }

  #wakeReady(): void {
    const waiters = this.#readyWaiters;
    this.#readyWaiters = undefined;
    if (waiters !== undefined) for (const wake of waiters) wake();
  }

  #overflow(cause: 'policy' | 'timeout'): void {
    const info = {
      policy: cause === 'timeout' ? ('timeout' as const) : this.#policy,
      droppedEvents: 0,
      queuedBytes: this.#queue.bytes,
    };
    if (cause === 'policy' && this.#policy === 'drop') {
      info.droppedEvents = this.#queue.dropOldest(this.#hwm);
      this.#dropped += info.droppedEvents;
    } else {
      info.droppedEvents = this.#queue.events;
      this.#dropped += info.droppedEvents;
      this.#slow = true;
      const error = new SseError(
        cause === 'timeout' ? 'ERR_SSE_SEND_TIMEOUT' : 'ERR_SSE_OVERFLOW',
        cause === 'timeout'
          ? `the client did not read for ${this.#sendTimeout} ms`
          : `the client did not read: ${info.queuedBytes} bytes queued (highWaterMark ${this.#hwm})`,
      );
      this.#queue.clear();
      this.#teardown(error);
      // The client is not reading, so a graceful end would never finish, and its unread data would
      // hold the kernel's send buffer: drop the connection at once.
      this.#transport.abort();
    }
    const onOverflow = this.#options.onOverflow;
    if (onOverflow) {
      try {
        onOverflow(info, this);
      } catch (err) {
        this.#report(err);
      }
    }
  }

  /**
   * A stream closed while its client is not reading would hold its connection (timeouts are off) until
   * the client reads again, and keep `server.close()` waiting. Give it `sendTimeout` (default 30 s) to
   * take the rest, then drop the connection; the shared scheduler does the waiting.
   */
  #reapIfStalled(): void {
    const transport = this.#transport;
    const scheduler = this.#scheduler;
    const after = this.#sendTimeout || DEFAULT_SEND_TIMEOUT;
    const deadline = Date.now() + after;
    const reaper = {
      tick(now: number) {
        if (transport.settled) {
          scheduler.delete(reaper);
        } else if (now >= deadline) {
          scheduler.delete(reaper);
          transport.abort();
        }
      },
    };
    scheduler.add(reaper, Math.min(MAX_RESOLUTION, after / 4));
  }

  #report(err: unknown): void {
    const onError = this.#options.onError;
    if (onError) {
      try {
        onError(err, this);
        return;
      } catch (reportError) {
        err = reportError;
      }
    }
    console.error('[ssekit] stream error:', err);
  }

  #teardown(reason: unknown): void {
    if (this.#state === CLOSED) return;
    this.#state = CLOSED;
    this.#closeReason = reason;
    if (this.#ticking) this.#scheduler.delete(this);
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
    this.#wakeReady();
  }
}

function noop(): void {}
