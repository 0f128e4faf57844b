/**
 * A {@link Backplane} on one Redis stream. Publishing is `XADD` (Redis assigns the id: one ordered
 * source of ids for every instance, no clocks compared); each instance reads the stream with a
 * blocking `XREAD` on a connection of its own and hands every entry, in stream order, to its hubs;
 * replay is `XRANGE`. Because every instance delivers the same entries in the same order with the
 * same ids, a client can resume on any instance with the `Last-Event-ID` another one gave it.
 */

import { createHash } from 'node:crypto';
import {
  assertValidEventName,
  type Backplane,
  type BackplaneMessage,
  type PublishRequest,
  type ReplayResult,
  SseError,
} from '@ssekit/core';
import { Redis, type RedisOptions } from 'ioredis';
import { compareStreamIds, isStreamId, ZERO_ID } from './stream-id.js';

// XADD that also records the previous entry's id in a `prev` field (ARGV: maxLen, id, field, value…).
const XADD_LUA = `local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local prev = '0-0'
if #last > 0 then prev = last[1][1] end
return redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], ARGV[2], 'prev', prev, unpack(ARGV, 3))`;
const XADD_SHA = createHash('sha1').update(XADD_LUA).digest('hex');

/** Options of {@link redisBackplane}. */
export interface RedisBackplaneOptions {
  /** Where Redis is, e.g. `redis://user:pass@host:6379/0`. Default: ioredis's default, `127.0.0.1:6379`. */
  url?: string;
  /**
   * A connection of your own, used for publishing and replay (it is not closed by `close()`). The
   * blocking reader always gets a connection of its own, made with `client.duplicate()`.
   */
  client?: Redis;
  /**
   * More ioredis options for the connections the backplane opens from `url` (TLS, password,
   * `retryStrategy`, `commandTimeout`…). Not used with `client`: the reader then copies its options.
   */
  redisOptions?: RedisOptions;
  /**
   * The stream key. Every instance that should behave as one hub uses the same key; use another key
   * per hub (or per tenant) to keep them apart. Default `'ssekit'`.
   */
  stream?: string;
  /**
   * Entries kept for replay: `XADD … MAXLEN ~ maxLen`. Trimming is approximate (Redis trims whole
   * internal nodes, so somewhat more may be kept), which keeps `XADD` O(1). Default 10000.
   */
  maxLen?: number;
  /**
   * How long one blocking `XREAD` waits before it is issued again, in ms. Redis answers at least this
   * often, which is how a silently dead reader connection is noticed: no answer within twice this
   * (plus 1 s) and the reader reconnects. Default 5000.
   */
  blockMs?: number;
  /** Entries fetched per `XREAD` and per `XRANGE` page of a replay. Default 1000. */
  readCount?: number;
  /**
   * Receives connection problems and malformed entries, which no caller could catch. Called once per
   * outage, not once per reconnection attempt. Default `console.error`.
   */
  onError?: (error: SseError) => void;
}

/** The backplane returned by {@link redisBackplane}. */
export interface RedisBackplane extends Backplane {
  /** The stream key. */
  readonly stream: string;
  /**
   * Resolves once both connections are up and the reader knows where the stream ends (its first
   * `position`). `publish()` and `replay()` wait for it by themselves; await it to fail fast at startup.
   * Rejects only when the backplane is closed first.
   */
  readonly ready: Promise<void>;
}

const DEFAULTS = { stream: 'ssekit', maxLen: 10_000, blockMs: 5000, readCount: 1000 };
// A publish or replay command with no answer after this long fails (and its connection is replaced).
const COMMAND_TIMEOUT = 5000;
const MAX_PAUSE = 2000;

type Source = 'commands' | 'reader';
const STOPPED: unique symbol = Symbol('stopped');

/**
 * Creates a backplane on a Redis stream: give it to several hubs, in several processes, and they
 * behave as one hub.
 *
 * ```ts
 * const hub = createHub({ backplane: redisBackplane({ url: process.env.REDIS_URL }) });
 * ```
 *
 * Event ids are Redis stream entry ids (`1718000000000-0`). A caller-given id must be one too, and
 * greater than the stream's last id (it is passed to `XADD` as the entry id): ids stay one ordered
 * sequence that every instance can resume from.
 *
 * @throws {SseError} `ERR_SSE_INVALID_OPTION` on a bad option.
 */
export function redisBackplane(options: RedisBackplaneOptions = {}): RedisBackplane {
  return new RedisStreamBackplane(options);
}

class RedisStreamBackplane implements RedisBackplane {
  readonly stream: string;
  readonly ready: Promise<void>;
  readonly #maxLen: number;
  readonly #blockMs: number;
  readonly #count: number;
  readonly #onError: (error: SseError) => void;
  readonly #commands: Redis;
  readonly #reader: Redis;
  readonly #ownsCommands: boolean;
  readonly #listeners = new Set<(message: BackplaneMessage) => void>();
  readonly #failing = new Set<Source>();
  readonly #inFlight = new Set<(error: unknown) => void>();
  readonly #loop: Promise<void>;
  #position: string | undefined;
  #startId = ZERO_ID;
  #started = false;
  #closed = false;
  #closing: Promise<void> | undefined;
  #resolveReady!: () => void;
  #rejectReady!: (error: unknown) => void;
  // Publishes and replays asked for before startup finished, failed at once if Redis is down.
  #waiters: { resolve: () => void; reject: (error: unknown) => void }[] = [];
  #pauseTimer: NodeJS.Timeout | undefined;
  #wake: (() => void) | undefined;
  #stopWaiting: (() => void) | undefined;
  readonly #watchdog: NodeJS.Timeout;
  // When the current XREAD was sent (0: none outstanding).
  #readingSince = 0;
  // Clients waiting for this instance's reader to deliver the id they resume from (see waitFor).
  readonly #idWaiters = new Set<{ id: string; resolve: (delivered: boolean) => void; deadline: number }>();
  #idTimer: NodeJS.Timeout | undefined;

  constructor(options: RedisBackplaneOptions) {
    validate(options);
    this.stream = options.stream ?? DEFAULTS.stream;
    this.#maxLen = options.maxLen ?? DEFAULTS.maxLen;
    this.#blockMs = options.blockMs ?? DEFAULTS.blockMs;
    this.#count = options.readCount ?? DEFAULTS.readCount;
    this.#onError = options.onError ?? ((error) => console.error('[ssekit] redis backplane:', error));

    const reader: RedisOptions = {
      connectionName: 'ssekit:reader',
      // The reader waits out outages: its XREAD is queued and re-sent once Redis is back.
      enableOfflineQueue: true,
      autoResendUnfulfilledCommands: true,
      maxRetriesPerRequest: null,
      lazyConnect: false,
    };
    if (options.client) {
      this.#commands = options.client;
      this.#ownsCommands = false;
      this.#reader = options.client.duplicate(reader);
      if (this.#commands.status === 'wait') this.#commands.connect().catch(() => {});
    } else {
      const base = { ...options.redisOptions };
      // Publishing never waits in a queue: while Redis is unreachable it fails at once, so the
      // caller knows and nothing is silently held in memory or lost.
      // A command in flight when the connection drops is failed (see #onCommandsClose), never re-sent
      // later: a late re-send could store an entry the caller was told had failed.
      const commands: RedisOptions = {
        connectionName: 'ssekit:commands',
        commandTimeout: COMMAND_TIMEOUT,
        ...base,
        enableOfflineQueue: false,
        autoResendUnfulfilledCommands: false,
      };
      this.#commands = options.url ? new Redis(options.url, commands) : new Redis(commands);
      this.#reader = options.url ? new Redis(options.url, { ...base, ...reader }) : new Redis({ ...base, ...reader });
      this.#ownsCommands = true;
    }
    this.#commands.on('error', this.#onCommandsError);
    this.#commands.on('ready', this.#onCommandsReady);
    this.#commands.on('close', this.#onCommandsClose);
    this.#reader.on('error', this.#onReaderError);
    this.#reader.on('ready', this.#onReaderReady);
    this.#reader.on('close', this.#onReaderClose);
    // One timer per backplane: it notices a reader whose XREAD is never answered (half-open TCP).
    this.#watchdog = setInterval(this.#checkReader, Math.max(250, this.#blockMs));
    this.#watchdog.unref();

    this.ready = new Promise<void>((resolve, reject) => {
      this.#resolveReady = resolve;
      this.#rejectReady = reject;
    });
    // Nobody has to await `ready`: its rejection on close must not surface as unhandled.
    this.ready.catch(() => {});
    this.#loop = this.#run();
  }

  get position(): string | undefined {
    return this.#position;
  }

  /**
   * Resolves `true` once entry `id` has been delivered by this instance's reader (at once if it was),
   * `false` for an id that is not in the stream or that did not arrive within `timeoutMs`. A client
   * that comes back with an id another instance delivered a moment ago waits here instead of being
   * told of a gap that is not one.
   */
  async waitFor(id: string, timeoutMs = 2000): Promise<boolean> {
    if (this.#closed || !isStreamId(id)) return false;
    await this.ready.catch(() => {});
    const position = this.#position;
    if (position === undefined) return false;
    if (compareStreamIds(id, position) <= 0) return true;
    // Ahead of our reader: real only if Redis already holds it (else it is forged or from elsewhere).
    let last: string | undefined;
    try {
      const [entry] = await this.#commands.xrevrange(this.stream, '+', '-', 'COUNT', 1);
      last = entry?.[0];
    } catch {
      return false;
    }
    if (last === undefined || compareStreamIds(id, last) > 0) return false;
    if (this.#position !== undefined && compareStreamIds(id, this.#position) <= 0) return true;
    return new Promise<boolean>((resolve) => {
      this.#idWaiters.add({ id, resolve, deadline: Date.now() + timeoutMs });
      // One timer for all waiters (they are rare: only clients that outran this instance's reader).
      this.#idTimer ??= setInterval(this.#expireIdWaiters, 50);
      this.#idTimer.unref();
    });
  }

  readonly #expireIdWaiters = (): void => {
    const now = Date.now();
    for (const waiter of this.#idWaiters) {
      if (this.#closed || now >= waiter.deadline) {
        this.#idWaiters.delete(waiter);
        waiter.resolve(false);
      }
    }
    if (this.#idWaiters.size === 0 && this.#idTimer !== undefined) {
      clearInterval(this.#idTimer);
      this.#idTimer = undefined;
    }
  };

  async publish(request: PublishRequest): Promise<string> {
    if (this.#closed) throw closedError();
    if (request.event !== undefined) assertValidEventName(request.event);
    if (request.id !== undefined && !isStreamId(request.id)) {
      throw new SseError(
        'ERR_SSE_INVALID_FIELD',
        `redisBackplane: an id must be a Redis stream id like "1718000000000-0", got ${JSON.stringify(request.id)}`,
      );
    }
    await this.#whenStarted('publish');
    this.#assertConnected('publish');
    const args: (string | number)[] = [this.#maxLen, request.id ?? '*'];
    args.push('topics', JSON.stringify(request.topics), 'data', request.data);
    if (request.event !== undefined) args.push('event', request.event);
    try {
      // XADD through a script that also stores the id of the entry before it (`prev`), atomically: a
      // replay from an id that trimming just removed can then tell "nothing lost" (the oldest entry's
      // `prev` is that id) from a real gap.
      return (await this.#answer(
        this.#commands.evalsha(XADD_SHA, 1, this.stream, ...args).catch((error: Error) => {
          if (!/NOSCRIPT/.test(error.message)) throw error;
          return this.#commands.eval(XADD_LUA, 1, this.stream, ...args);
        }),
      )) as string;
    } catch (cause) {
      throw new SseError('ERR_SSE_BACKPLANE', `publish to Redis stream "${this.stream}" failed: ${message(cause)}`, {
        cause,
      });
    }
  }

  subscribe(listener: (message: BackplaneMessage) => void): () => void {
    if (this.#closed) return () => {};
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  async replay(afterId: string, topics: readonly string[], upTo: string | undefined): Promise<ReplayResult> {
    await this.#whenStarted('replay');
    this.#assertConnected('replay');
    // A hub that took its cut-off before startup saw no message yet: its cut-off is where reading began.
    const end = upTo ?? this.#startId;
    if (!isStreamId(afterId) || !isStreamId(end)) return this.#gap();
    const order = compareStreamIds(afterId, end);
    // Past the cut-off: not an id this instance delivered (another stream, a flushed Redis, or an
    // instance whose reader is ahead of ours); resuming from it could skip or repeat events.
    if (order > 0) return this.#gap();
    if (order === 0) return { gap: false, messages: [] };
    try {
      return await this.#range(afterId, topics, end);
    } catch (cause) {
      throw new SseError('ERR_SSE_BACKPLANE', `replay from Redis stream "${this.stream}" failed: ${message(cause)}`, {
        cause,
      });
    }
  }

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#closed = true;
    this.#listeners.clear();
    const error = closedError();
    this.#rejectReady(error);
    this.#failWaiters(error);
    clearTimeout(this.#pauseTimer);
    this.#wake?.();
    this.#stopWaiting?.();
    clearInterval(this.#watchdog);
    this.#expireIdWaiters();
    // Ends the blocking XREAD at once (it rejects), which ends the loop.
    this.#reader.disconnect();
    this.#reader.off('error', this.#onReaderError);
    this.#reader.off('ready', this.#onReaderReady);
    this.#reader.off('close', this.#onReaderClose);
    this.#reader.on('error', () => {});
    if (this.#ownsCommands) {
      try {
        await this.#commands.quit();
      } catch {
        this.#commands.disconnect();
      }
    }
    this.#commands.off('error', this.#onCommandsError);
    this.#commands.off('ready', this.#onCommandsReady);
    this.#commands.off('close', this.#onCommandsClose);
    if (this.#ownsCommands) this.#commands.on('error', () => {});
    await this.#loop;
  }

  /** Finds where the stream ends, then reads it for as long as the backplane is open. */
  async #run(): Promise<void> {
    let failures = 0;
    while (!this.#closed && !this.#started) {
      const commandsReady = untilReady(this.#commands);
      try {
        const found = await this.#unlessClosed(
          Promise.all([this.#reader.xrevrange(this.stream, '+', '-', 'COUNT', 1), commandsReady.promise]),
        );
        if (found === STOPPED) return;
        const [last] = found;
        this.#startId = last[0]?.[0] ?? ZERO_ID;
        this.#position = this.#startId;
        this.#started = true;
        const waiters = this.#waiters;
        this.#waiters = [];
        for (const waiter of waiters) waiter.resolve();
        this.#resolveReady();
      } catch (error) {
        if (this.#closed) return;
        this.#report('reader', error);
        await this.#pause(++failures);
      } finally {
        commandsReady.cancel();
      }
    }
    failures = 0;
    while (!this.#closed) {
      try {
        this.#readingSince = Date.now();
        const reply = await this.#unlessClosed(
          this.#reader.xread(
            'COUNT',
            this.#count,
            'BLOCK',
            this.#blockMs,
            'STREAMS',
            this.stream,
            this.#position as string,
          ),
        );
        this.#readingSince = 0;
        if (reply === STOPPED || this.#closed) return;
        failures = 0;
        this.#failing.delete('reader');
        if (reply !== null) for (const [, entries] of reply) this.#deliver(entries);
      } catch (error) {
        this.#readingSince = 0;
        if (this.#closed) return;
        this.#report('reader', error);
        await this.#pause(++failures);
      }
    }
  }

  /**
   * `work`, or STOPPED as soon as the backplane closes. ioredis leaves a command queued while it waits
   * to reconnect, and `disconnect()` in that state does not fail it: without this, close() could wait
   * forever for the loop.
   */
  #unlessClosed<T>(work: Promise<T>): Promise<T | typeof STOPPED> {
    return new Promise<T | typeof STOPPED>((resolve, reject) => {
      this.#stopWaiting = () => resolve(STOPPED);
      work.then(resolve, reject);
    });
  }

  #deliver(entries: [id: string, fields: string[]][]): void {
    for (const [id, fields] of entries) {
      // The position moves with each delivery in the same synchronous step, so a hub reading it
      // between two messages gets a cut-off that matches exactly what its streams were sent.
      this.#position = id;
      if (this.#idWaiters.size > 0) {
        for (const waiter of this.#idWaiters) {
          if (compareStreamIds(waiter.id, id) <= 0) {
            this.#idWaiters.delete(waiter);
            waiter.resolve(true);
          }
        }
      }
      const message = this.#toMessage(id, fields);
      if (message === undefined) continue;
      for (const listener of this.#listeners) {
        try {
          listener(message);
        } catch (error) {
          this.#onError(new SseError('ERR_SSE_BACKPLANE', `a listener threw on entry ${id}`, { cause: error }));
        }
      }
    }
  }

  /** Entries after `afterId` up to `end` for `topics`, page by page, or a gap if any was lost. */
  async #range(afterId: string, topics: readonly string[], end: string): Promise<ReplayResult> {
    const messages: BackplaneMessage[] = [];
    let cursor = afterId;
    for (;;) {
      // The loss check and the page are read atomically, so trimming cannot slip in between.
      const results = await this.#answer(
        this.#commands
          .multi()
          .xinfo('STREAM', this.stream)
          .xrange(this.stream, `(${cursor}`, end, 'COUNT', this.#count)
          .exec(),
      );
      if (results === null) throw new Error('the MULTI transaction was discarded');
      const [[infoError, info], [rangeError, range]] = results as [[Error | null, unknown], [Error | null, unknown]];
      if (rangeError) throw rangeError;
      if (infoError) {
        // No such key: the stream is gone (deleted, or Redis restarted without persistence), and with
        // it entries this instance delivered up to `end`.
        if (/no such key/i.test(infoError.message)) return { gap: true, oldest: undefined };
        throw infoError;
      }
      const stream = readInfo(info as unknown[]);
      if (lostAfter(cursor, end, stream)) return { gap: true, oldest: stream.first };
      const page = range as [string, string[]][];
      for (const [id, fields] of page) {
        const message = this.#toMessage(id, fields);
        if (message !== undefined && matches(message.topics, topics)) messages.push(message);
      }
      if (page.length < this.#count) return { gap: false, messages };
      cursor = (page[page.length - 1] as [string, string[]])[0];
      if (compareStreamIds(cursor, end) >= 0) return { gap: false, messages };
    }
  }

  async #gap(): Promise<ReplayResult> {
    let oldest: string | undefined;
    try {
      oldest = (await this.#answer(this.#commands.xrange(this.stream, '-', '+', 'COUNT', 1)))[0]?.[0];
    } catch {
      // The gap stands without it; `oldest` is only a hint.
    }
    return { gap: true, oldest };
  }

  #toMessage(id: string, fields: string[]): BackplaneMessage | undefined {
    let topics: unknown;
    let data: string | undefined;
    let event: string | undefined;
    for (let i = 0; i + 1 < fields.length; i += 2) {
      const name = fields[i];
      const value = fields[i + 1] as string;
      if (name === 'data') data = value;
      else if (name === 'event') event = value;
      else if (name === 'topics') {
        try {
          topics = JSON.parse(value);
        } catch {
          topics = undefined;
        }
      }
    }
    if (data === undefined || !Array.isArray(topics) || !topics.every((t) => typeof t === 'string')) {
      this.#onError(
        new SseError(
          'ERR_SSE_BACKPLANE',
          `entry ${id} of Redis stream "${this.stream}" has no "topics" (a JSON array of strings) or no "data": skipped`,
        ),
      );
      return undefined;
    }
    return { id, topics: topics as string[], event, data };
  }

  /**
   * The reply to a command on the command connection, or a rejection as soon as that connection drops
   * (ioredis would otherwise hold the command until it reconnects, or forever).
   */
  #answer<T>(reply: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const fail = (error: unknown): void => {
        this.#inFlight.delete(fail);
        reject(error);
        // No answer in time: the connection may be half-open. Replace it (only one we created).
        if (this.#ownsCommands && !this.#closed && (error as Error)?.message === 'Command timed out') {
          this.#report('commands', error);
          this.#commands.disconnect(true);
        }
      };
      this.#inFlight.add(fail);
      reply.then((value) => {
        this.#inFlight.delete(fail);
        resolve(value);
      }, fail);
    });
  }

  #whenStarted(what: string): Promise<void> {
    if (this.#started) return Promise.resolve();
    if (this.#closed) return Promise.reject(closedError());
    // Redis is known to be down right now: say so at once instead of waiting for it.
    if (this.#failing.size > 0) return Promise.reject(unreachable(this.stream, what));
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  #assertConnected(what: string): void {
    if (this.#closed) throw closedError();
    // Also covers a caller-given client whose offline queue would otherwise hold the command.
    if (this.#commands.status !== 'ready') throw unreachable(this.stream, what, this.#commands.status);
  }

  #failWaiters(error: unknown): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const waiter of waiters) waiter.reject(error);
  }

  /** Reports a connection problem once per outage: the first error, not every reconnection attempt. */
  #report(source: Source, error: unknown): void {
    if (this.#closed) return;
    const first = this.#failing.size === 0;
    this.#failing.add(source);
    if (!this.#started) this.#failWaiters(unreachable(this.stream, 'a call made during startup', undefined, error));
    if (!first) return;
    this.#onError(
      new SseError(
        'ERR_SSE_BACKPLANE',
        `Redis stream "${this.stream}", ${source} connection: ${message(error)}. Reconnecting; publishes ` +
          'reject until Redis is back, open streams stay open and catch up afterwards.',
        { cause: error },
      ),
    );
  }

  #pause(failures: number): Promise<void> {
    return new Promise((resolve) => {
      this.#wake = resolve;
      this.#pauseTimer = setTimeout(resolve, Math.min(MAX_PAUSE, 50 * 2 ** Math.min(failures, 6)));
      this.#pauseTimer.unref();
    });
  }

  readonly #onCommandsClose = (): void => {
    if (this.#closed) return;
    this.#report('commands', new Error('connection lost'));
    if (this.#inFlight.size === 0) return;
    const error = new Error('the connection to Redis closed before it answered (the entry may or may not be stored)');
    for (const fail of [...this.#inFlight]) fail(error);
  };
  readonly #onCommandsError = (error: Error): void => this.#report('commands', error);
  readonly #onReaderError = (error: Error): void => this.#report('reader', error);
  readonly #onCommandsReady = (): void => {
    this.#failing.delete('commands');
  };
  readonly #onReaderReady = (): void => {
    this.#failing.delete('reader');
    // A queued XREAD is sent now: its wait starts now, not when it was queued.
    if (this.#readingSince !== 0) this.#readingSince = Date.now();
  };
  readonly #onReaderClose = (): void => {
    this.#report('reader', new Error('connection lost'));
  };
  readonly #checkReader = (): void => {
    if (this.#readingSince === 0 || this.#reader.status !== 'ready') return;
    const limit = 2 * this.#blockMs + 1000;
    if (Date.now() - this.#readingSince <= limit) return;
    this.#readingSince = Date.now();
    this.#report('reader', new Error(`no answer to XREAD within ${limit} ms`));
    this.#reader.disconnect(true);
  };
}

interface StreamInfo {
  length: number;
  entriesAdded: number | undefined;
  maxDeleted: string | undefined;
  first: string | undefined;
  /** The `prev` field of the oldest entry: the id of the entry published before it. */
  firstPrev: string | undefined;
}

function readInfo(reply: unknown[]): StreamInfo {
  const info: StreamInfo = {
    length: 0,
    entriesAdded: undefined,
    maxDeleted: undefined,
    first: undefined,
    firstPrev: undefined,
  };
  for (let i = 0; i + 1 < reply.length; i += 2) {
    const value = reply[i + 1];
    switch (reply[i]) {
      case 'length':
        info.length = Number(value);
        break;
      case 'entries-added':
        info.entriesAdded = Number(value);
        break;
      case 'max-deleted-entry-id':
        info.maxDeleted = String(value);
        break;
      case 'first-entry':
        info.first = Array.isArray(value) ? String(value[0]) : undefined;
        if (Array.isArray(value) && Array.isArray(value[1])) {
          const fields = value[1] as unknown[];
          for (let f = 0; f + 1 < fields.length; f += 2) {
            if (fields[f] === 'prev') info.firstPrev = String(fields[f + 1]);
          }
        }
        break;
    }
  }
  return info;
}

/**
 * True when some entry after `cursor` (up to `end`) is no longer in the stream. Trimming only removes
 * the oldest entries, so everything from the first retained entry on is there; `XDEL` is covered by
 * the largest deleted id Redis (7+) records. Below the first entry we cannot tell a trimmed entry
 * from no entry unless nothing was ever removed, so that counts as lost: a client may hear of a gap
 * that cost it nothing, never miss one silently.
 */
function lostAfter(cursor: string, end: string, stream: StreamInfo): boolean {
  if (stream.maxDeleted !== undefined && compareStreamIds(stream.maxDeleted, cursor) > 0) return true;
  // Empty now, yet `end` was delivered: it was removed.
  if (stream.first === undefined) return compareStreamIds(cursor, end) < 0;
  if (compareStreamIds(cursor, stream.first) >= 0) return false;
  // The oldest entry remembers the one before it: when that is the cursor, nothing between was lost.
  if (stream.firstPrev === cursor) return false;
  return stream.entriesAdded === undefined || stream.entriesAdded !== stream.length;
}

function matches(messageTopics: readonly string[], wanted: readonly string[]): boolean {
  for (const topic of messageTopics) if (wanted.includes(topic)) return true;
  return false;
}

/** Resolves once `client` is ready (or has ended); `cancel()` stops listening. */
function untilReady(client: Redis): { promise: Promise<void>; cancel: () => void } {
  if (client.status === 'ready') return { promise: Promise.resolve(), cancel: () => {} };
  let done = (): void => {};
  const promise = new Promise<void>((resolve) => {
    done = () => {
      client.off('ready', done);
      client.off('end', done);
      resolve();
    };
    client.on('ready', done);
    client.on('end', done);
  });
  return { promise, cancel: done };
}

function unreachable(stream: string, what: string, status?: string, cause?: unknown): SseError {
  return new SseError(
    'ERR_SSE_BACKPLANE',
    `Redis stream "${stream}": ${what} failed, Redis is unreachable${status ? ` (connection ${status})` : ''}`,
    cause === undefined ? {} : { cause },
  );
}

function closedError(): SseError {
  return new SseError('ERR_SSE_CLOSED', 'the Redis backplane is closed');
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function validate(options: RedisBackplaneOptions): void {
  const fail = (text: string): never => {
    throw new SseError('ERR_SSE_INVALID_OPTION', `redisBackplane: ${text}`);
  };
  if (options.url !== undefined && options.client !== undefined) fail('give either url or client, not both');
  if (options.url !== undefined && (typeof options.url !== 'string' || options.url === '')) {
    fail(`url must be a non-empty string, got ${String(options.url)}`);
  }
  if (options.stream !== undefined && (typeof options.stream !== 'string' || options.stream === '')) {
    fail(`stream must be a non-empty string, got ${String(options.stream)}`);
  }
  const whole = (name: keyof typeof DEFAULTS, value: unknown): void => {
    if (value !== undefined && (!Number.isSafeInteger(value) || (value as number) < 1)) {
      fail(`${name} must be a whole number >= 1, got ${String(value)}`);
    }
  };
  whole('maxLen', options.maxLen);
  whole('blockMs', options.blockMs);
  whole('readCount', options.readCount);
  if (options.onError !== undefined && typeof options.onError !== 'function') fail('onError must be a function');
}
