/**
 * The hub: topics, fan-out and resume.
 *
 * Fan-out costs one serialization and one frame per published message, whatever the subscriber count:
 * subscribers with the same topics (and no filter) form one group, a turn's messages are joined once
 * per group, and that one string (or Buffer) is written to every stream of the group. A stream on
 * several topics sits in one group, so a message published to several of them reaches it once.
 *
 * Resume is race-free: a stream that comes back with a `Last-Event-ID` joins its group at once but is
 * held (its writes queue); the backplane is asked for what came after that id up to the current
 * position; the replay is written, then what queued meanwhile. Live messages after the position are
 * exactly the queued ones, so there is no gap and no duplicate. When history cannot cover the id, the
 * client gets a gap event instead, then live messages.
 */
import { type Backplane, type BackplaneMessage, memoryBackplane } from './backplane.js';
import { SseError } from './errors.js';
import { type FlushFn, scheduleFlush } from './flush.js';
import { assertValidEventName, assertValidId, encode, encodeData, type Serializer, serializeData } from './frame.js';
import { type CloseOptions, type CloseWatcher, StreamGroup, type StreamGroupOptions } from './group.js';
import type { HistoryOptions } from './history.js';
import { checkOptionNames, invalidOption } from './options.js';
import { type Chunk, utf8 } from './runtime.js';
import type { Subscriber } from './stream.js';

/** A message as a subscriber's `filter` sees it (data is the serialized text). */
export type HubMessage = Readonly<Pick<BackplaneMessage, 'id' | 'topics' | 'event' | 'data'>>;

/** Options of {@link createHub}. */
export interface HubOptions extends StreamGroupOptions {
  /** Where ids, history and cross-instance delivery come from. Default: an in-memory backplane. */
  backplane?: Backplane;
  /** History of the default in-memory backplane; `false` keeps none. Default `{ size: 1000 }`. */
  history?: HistoryOptions | false;
  /** Event type of the gap event. Default `'ssekit-gap'`. */
  gapEvent?: string;
  /** Serializer for non-string data. Default `JSON.stringify`. */
  serialize?: Serializer;
  /** Receives errors no caller can catch (a failed replay). Default `console.error`. */
  onError?: (error: unknown) => void;
  /**
   * What the hub's log may hold for subscribers that are behind, in bytes (string length for text).
   * Past it, the subscribers furthest behind are cut first: they reconnect and resume from history,
   * or get the gap event. Default 67108864 (64 MiB).
   */
  maxBufferedBytes?: number;
}

/** Options of {@link Hub.subscribe}. */
export interface SubscribeOptions {
  /** Only messages for which this returns true reach this stream (evaluated once per message). */
  filter?: (message: HubMessage) => boolean;
  /** Resume after this id. Default: the stream's own `lastEventId`. */
  lastEventId?: string;
}

/** Options of {@link Hub.publish}. */
export interface PublishOptions {
  /** The event type. */
  event?: string;
  /** A caller-chosen id. Default: the backplane assigns an ordered one. */
  id?: string;
}

/** The data of the gap event. */
export interface GapData {
  /** The id the client asked to resume after. */
  lastEventId: string;
  /** The oldest id history still holds, if known. */
  oldestId: string | null;
}

/** Counters of a hub. */
export interface HubStats {
  /** Streams subscribed now. */
  streams: number;
  /** Subscribed streams per topic. */
  topics: Record<string, number>;
  /** `publish()` calls on this hub that the backplane accepted. */
  published: number;
  /** Messages this hub received from its backplane and fanned out (its own and other instances'). */
  delivered: number;
  /** Events written to streams (one per event per stream), replays included. */
  frames: number;
  /** Bytes (string length for text) written to streams. */
  bytes: number;
  /** Resumes served from history / answered with a gap event. */
  replays: number;
  gaps: number;
  /** Events dropped by streams' `drop` policy. */
  dropped: number;
  /** Streams closed because their client did not read. */
  slowClosed: number;
  /** Connections refused by `maxConnections`. */
  refused: number;
  /** Subscribers behind the log's head now (each is a position in the log, nothing more). */
  behind: number;
  /** Bytes the log holds now for subscribers that are behind. */
  bufferedBytes: number;
  /** Subscribers cut because the log passed `maxBufferedBytes`. */
  cut: number;
}

interface Group {
  readonly topics: readonly string[];
  readonly topicSet: ReadonlySet<string>;
  readonly filter: ((message: HubMessage) => boolean) | undefined;
  readonly subs: Set<Subscription>;
  parts: string[];
  bytes: number;
  lastMessage: number;
  key: string;
  /** The last slice built for a subscriber behind: others of the group at the same position share it. */
  slice: Slice | undefined;
}

/** Frames of the log from `from` (inclusive) to `to` (exclusive) that a group takes, as one chunk. */
interface Slice {
  readonly from: number;
  readonly to: number;
  readonly chunk: Chunk;
  readonly events: number;
}

interface Subscription {
  readonly stream: Subscriber;
  filter: ((message: HubMessage) => boolean) | undefined;
  group: Group;
  /** While behind: the log position (sequence number) of the next message it may take. */
  cursor: number;
  behind: boolean;
}

/** Most one write to a subscriber that is behind carries: what it pins in flight. */
const SLICE = 256 * 1024;
const DEFAULT_MAX_BUFFERED = 64 * 1024 * 1024;

/** Payload types per topic, for typed hubs. */
export type TopicMap = Record<string, unknown>;

/**
 * A set of topics that streams subscribe to and that code publishes to. Create it with
 * {@link createHub}; give `createHub<{ prices: Price; news: string }>()` a type to have `publish` check
 * payloads at compile time.
 */
export class Hub<T extends object = TopicMap> {
  /** The streams of this hub, with its `maxConnections`: adapters open streams in it. */
  readonly group: StreamGroup;
  readonly #backplane: Backplane;
  readonly #ownsBackplane: boolean;
  readonly #gapEvent: string;
  readonly #serialize: Serializer;
  readonly #onError: (error: unknown) => void;
  readonly #subs = new Map<Subscriber, Subscription>();
  readonly #seen = new WeakSet<Subscriber>();
  readonly #groups = new Map<string, Group>();
  readonly #byTopic = new Map<string, Set<Group>>();
  readonly #unlisten: () => void;
  #turn: BackplaneMessage[] = [];
  #scheduled = false;
  #closed = false;
  #filterKeys = 0;
  // The log: messages with sequence numbers #logFirst, #logFirst + 1, …, #headSeq (in #log from
  // #logStart on), kept while a subscriber behind may still take them, and their frames' sizes.
  readonly #log: (BackplaneMessage | undefined)[] = [];
  readonly #logSizes: number[] = [];
  #logStart = 0;
  #logFirst = 1;
  #headSeq = 0;
  #logBytes = 0;
  readonly #behind = new Set<Subscription>();
  readonly #maxBuffered: number;
  readonly #stats = {
    published: 0,
    delivered: 0,
    frames: 0,
    bytes: 0,
    replays: 0,
    gaps: 0,
    dropped: 0,
    slowClosed: 0,
    cut: 0,
  };

  // Told when a subscribed stream closes or can take writes again: one object for the hub, no closure
  // per stream.
  readonly #watcher: CloseWatcher = {
    memberClosed: (member) => this.#detach(member as Subscriber),
    memberWritable: (member) => this.#writable(member as Subscriber),
  };

  /** Use {@link createHub}, which checks the options. */
  constructor(options: HubOptions = {}) {
    this.group = new StreamGroup({ maxConnections: options.maxConnections, retryAfter: options.retryAfter });
    this.#ownsBackplane = options.backplane === undefined;
    this.#backplane =
      options.backplane ?? memoryBackplane(options.history === false ? { size: 0 } : (options.history ?? {}));
    this.#gapEvent = options.gapEvent ?? 'ssekit-gap';
    this.#serialize = options.serialize ?? JSON.stringify;
    this.#onError = options.onError ?? ((error) => console.error('[ssekit] hub:', error));
    this.#maxBuffered = options.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED;
    this.#unlisten = this.#backplane.subscribe(this.#receive);
  }

  /** The backplane under this hub. */
  get backplane(): Backplane {
    return this.#backplane;
  }

  /**
   * Subscribes `stream` to `topics` (added to any it holds). With a last event id (the stream's own,
   * or `options.lastEventId`) it first replays what the client missed, or sends the gap event. The
   * stream leaves the hub when it closes. Resolves once the stream is live.
   * @throws {SseError} `ERR_SSE_INVALID_TOPIC` for an empty or non-string topic.
   */
  async subscribe(
    stream: Subscriber,
    topics: string | readonly string[],
    options: SubscribeOptions = {},
  ): Promise<void> {
    const wanted = checkTopics(topics);
    if (this.#closed) throw new SseError('ERR_SSE_CLOSED', 'the hub is closed');
    if (!stream.isOpen) return;
    const existing = this.#subs.get(stream);
    // The request's Last-Event-ID is a resume point once: a stream that unsubscribes and subscribes
    // again (moving between topics) must not be replayed the same events twice.
    const first = !this.#seen.has(stream);
    this.#seen.add(stream);
    const lastEventId = options.lastEventId ?? (first ? stream.lastEventId : undefined);
    // Write what this hub already holds for the current turn first: the stream joins its group now,
    // so anything still queued reaches it live, and the position read below must not count it.
    this.#flush();

    if (lastEventId === undefined) {
      if (first) {
        // Give a new client the current position as its last event id (an id-only frame, no event):
        // if it reconnects before any event reached it, it resumes from here instead of missing the
        // events published while it was away.
        const position = this.#backplane.position;
        if (position !== undefined) stream.enqueue(`id: ${position}\n\n`, 0);
      }
      this.#attach(stream, wanted, options.filter);
      return;
    }

    if (this.#backplane.waitFor !== undefined) {
      // The id may come from another instance that is a few ms ahead of this one: wait to catch up.
      await this.#backplane.waitFor(lastEventId);
      if (!stream.isOpen) return;
      this.#flush();
    }
    // Everything delivered so far was written (flush above) before the cut-off is taken: otherwise it
    // would be both replayed and written live.
    const upTo = this.#backplane.position;
    stream.hold();
    this.#attach(stream, wanted, options.filter);
    let replay = '';
    let replayed = 0;
    try {
      const result = await this.#backplane.replay(lastEventId, wanted, upTo);
      if (result.gap) {
        this.#stats.gaps++;
        const data: GapData = { lastEventId, oldestId: result.oldest ?? null };
        replay = encode({ event: this.#gapEvent, data, id: upTo }, JSON.stringify);
      } else {
        this.#stats.replays++;
        const filter = options.filter ?? existing?.filter;
        let events = 0;
        for (const message of result.messages) {
          if (filter !== undefined && !this.#accepts(filter, message)) continue;
          replay += this.#frameOf(message);
          events++;
        }
        replayed = events;
        this.#stats.frames += events;
        this.#stats.bytes += replay.length;
      }
    } catch (error) {
      this.#onError(new SseError('ERR_SSE_BACKPLANE', `replay after ${lastEventId} failed`, { cause: error }));
      this.#stats.gaps++;
      replay = encode({ event: this.#gapEvent, data: { lastEventId, oldestId: null } satisfies GapData });
    }
    stream.release(replay, replayed);
  }

  /** Removes `stream` from `topics` (default: from all, leaving the hub). */
  unsubscribe(stream: Subscriber, topics?: string | readonly string[]): void {
    const sub = this.#subs.get(stream);
    if (sub === undefined) return;
    const removed = topics === undefined ? undefined : checkTopics(topics);
    const left = removed === undefined ? [] : sub.group.topics.filter((topic) => !removed.includes(topic));
    this.#leaveGroup(sub, sub.group);
    if (left.length === 0) {
      stream.unwatchClose(this.#watcher);
      this.#subs.delete(stream);
      if (sub.behind) {
        this.#caughtUp(sub);
        this.#trim();
      }
      return;
    }
    sub.group = this.#joinGroup(sub, left, sub.filter);
  }

  /**
   * Publishes `data` to one or several topics and resolves to the event's id. The data is serialized
   * once and framed once for all subscribers. Rejects when the backplane did not accept the message.
   * @throws {SseError} (as a rejection) on a bad topic, event name or id, or unserializable data.
   */
  async publish<K extends keyof T & string>(
    topics: K | readonly K[],
    data: T[K],
    options: PublishOptions = {},
  ): Promise<string> {
    if (this.#closed) throw new SseError('ERR_SSE_CLOSED', 'the hub is closed');
    const list = checkTopics(topics);
    if (data === undefined) throw new SseError('ERR_SSE_NO_DATA', 'data is undefined');
    // Validate here, so a bad event name or id is the publisher's error, not every subscriber's.
    if (options.event !== undefined) assertValidEventName(options.event);
    if (options.id !== undefined) assertValidId(options.id);
    const text = serializeData(data, this.#serialize);
    const id = await this.#backplane.publish({ topics: list, event: options.event, id: options.id, data: text });
    this.#stats.published++;
    return id;
  }

  /** Counters of this hub. */
  stats(): HubStats {
    // Counted in a Map: topic names come from users, and `__proto__` or `constructor` must count too.
    const counts = new Map<string, number>();
    for (const group of this.#groups.values()) {
      for (const topic of group.topics) counts.set(topic, (counts.get(topic) ?? 0) + group.subs.size);
    }
    const topics: Record<string, number> = Object.fromEntries(counts);
    let dropped = this.#stats.dropped;
    let slowClosed = this.#stats.slowClosed;
    for (const stream of this.#subs.keys()) dropped += stream.droppedEvents;
    for (const stream of this.#subs.keys()) if (stream.closedForSlowness) slowClosed++;
    return {
      ...this.#stats,
      dropped,
      slowClosed,
      streams: this.#subs.size,
      topics,
      refused: this.group.refused,
      behind: this.#behind.size,
      bufferedBytes: this.#logBytes,
    };
  }

  /**
   * Closes every stream of the hub (telling clients to come back after `retry` ms when given), stops
   * listening to the backplane, and closes the backplane if the hub created it.
   */
  async close(options?: CloseOptions): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#flush();
    for (const stream of [...this.#subs.keys()]) stream.close(options);
    this.group.closeAll(options);
    this.#unlisten();
    if (this.#ownsBackplane) await this.#backplane.close();
  }

  static readonly #flushHub: FlushFn<Hub<object>> = (hub) => hub.#flush();

  // Appends this turn's messages to the log and writes them: one joined chunk per group, the same
  // chunk to each of its streams that is writable and caught up. A subscriber that is not (its client
  // behind, or held during a replay), or a turn too large for one write, leaves it behind: a position
  // in the log, from which it is written slice by slice as its client takes more.
  #flush(): void {
    this.#scheduled = false;
    const turn = this.#turn;
    if (turn.length === 0) return;
    this.#turn = [];
    const firstSeq = this.#headSeq + 1;
    const touched: Group[] = [];
    for (const message of turn) {
      const n = ++this.#headSeq;
      let frame: string | undefined;
      for (const topic of message.topics) {
        const groups = this.#byTopic.get(topic);
        if (groups === undefined) continue;
        for (const group of groups) {
          if (group.lastMessage === n) continue;
          group.lastMessage = n;
          frame ??= this.#frameOf(message);
          // A filtered group has one stream: when it is behind, its filter runs as it is written.
          if (group.filter !== undefined && (this.#isBehind(group) || !this.#accepts(group.filter, message))) continue;
          if (group.parts.length === 0) {
            touched.push(group);
            group.bytes = 0;
          }
          group.parts.push(frame);
          group.bytes += frame.length;
        }
      }
      this.#log.push(message);
      this.#logSizes.push(frame?.length ?? 0);
      this.#logBytes += frame?.length ?? 0;
    }
    for (const group of touched) {
      const parts = group.parts;
      group.parts = [];
      const whole = group.bytes <= SLICE;
      let chunk: Chunk | undefined;
      for (const sub of group.subs) {
        const stream = sub.stream;
        if (sub.behind) continue;
        if (!whole || !stream.writable) {
          this.#fallBehind(sub, firstSeq);
          continue;
        }
        if (chunk === undefined) {
          const text = parts.length === 1 ? (parts[0] as string) : parts.join('');
          // One encoding to bytes for the whole group instead of one per socket.
          chunk = group.subs.size > 1 ? utf8(text) : text;
        }
        this.#stats.frames += parts.length;
        this.#stats.bytes += group.bytes;
        stream.deliver(chunk, parts.length);
      }
    }
    for (const sub of this.#behind) if (sub.stream.writable) this.#pump(sub);
    this.#trim();
  }

  #isBehind(group: Group): boolean {
    for (const sub of group.subs) return sub.behind;
    return false;
  }

  #fallBehind(sub: Subscription, cursor: number): void {
    sub.behind = true;
    sub.cursor = cursor;
    this.#behind.add(sub);
  }

  // A subscriber behind can take writes again: write from its position, as much as its client takes.
  #writable(stream: Subscriber): void {
    const sub = this.#subs.get(stream);
    if (sub === undefined || !sub.behind) return;
    this.#pump(sub);
    this.#trim();
  }

  #pump(sub: Subscription): void {
    const stream = sub.stream;
    const group = sub.group;
    while (sub.cursor <= this.#headSeq && stream.writable) {
      let slice = group.slice;
      if (slice === undefined || slice.from !== sub.cursor) {
        slice = this.#slice(group, sub.cursor);
        group.slice = slice;
      }
      sub.cursor = slice.to;
      if (slice.events > 0) {
        this.#stats.frames += slice.events;
        this.#stats.bytes += typeof slice.chunk === 'string' ? slice.chunk.length : slice.chunk.byteLength;
        stream.deliver(slice.chunk, slice.events);
      }
    }
    if (sub.cursor > this.#headSeq && sub.behind) this.#caughtUp(sub);
  }

  // No longer behind (caught up, cut or gone): its group's cached slice goes too, so that nothing of
  // the log stays pinned by it (another subscriber behind in the group builds its own again).
  #caughtUp(sub: Subscription): void {
    sub.behind = false;
    this.#behind.delete(sub);
    sub.group.slice = undefined;
  }

  #slice(group: Group, from: number): Slice {
    let text = '';
    let events = 0;
    let seq = from;
    for (; seq <= this.#headSeq && text.length < SLICE; seq++) {
      const message = this.#log[this.#logStart + (seq - this.#logFirst)] as BackplaneMessage;
      if (!takes(group, message)) continue;
      if (group.filter !== undefined && !this.#accepts(group.filter, message)) continue;
      text += this.#frameOf(message);
      events++;
    }
    return { from, to: seq, chunk: group.subs.size > 1 ? utf8(text) : text, events };
  }

  // Drops what no subscriber behind needs; past the budget, cuts those furthest behind first.
  #trim(): void {
    for (;;) {
      let keepFrom = this.#headSeq + 1;
      let furthest: Subscription | undefined;
      for (const sub of this.#behind) {
        if (sub.cursor < keepFrom) {
          keepFrom = sub.cursor;
          furthest = sub;
        }
      }
      this.#dropBefore(keepFrom);
      if (this.#logBytes <= this.#maxBuffered || furthest === undefined) return;
      this.#caughtUp(furthest);
      this.#stats.cut++;
      // It reconnects and resumes from history (or is told of the gap).
      furthest.stream.close();
    }
  }

  #dropBefore(seq: number): void {
    const log = this.#log;
    if (seq > this.#headSeq) {
      // Nobody is behind (the common turn): the whole log goes at once.
      log.length = 0;
      this.#logSizes.length = 0;
      this.#logStart = 0;
      this.#logFirst = seq;
      this.#logBytes = 0;
      return;
    }
    while (this.#logFirst < seq && this.#logStart < log.length) {
      log[this.#logStart] = undefined;
      this.#logBytes -= this.#logSizes[this.#logStart] as number;
      this.#logStart++;
      this.#logFirst++;
    }
    this.#logFirst = Math.max(this.#logFirst, seq);
    if (this.#logStart === log.length) {
      log.length = 0;
      this.#logSizes.length = 0;
      this.#logStart = 0;
    } else if (this.#logStart > 1024 && this.#logStart * 2 > log.length) {
      log.splice(0, this.#logStart);
      this.#logSizes.splice(0, this.#logStart);
      this.#logStart = 0;
    }
  }

  readonly #receive = (message: BackplaneMessage): void => {
    this.#stats.delivered++;
    this.#turn.push(message);
    if (!this.#scheduled) {
      this.#scheduled = true;
      scheduleFlush(Hub.#flushHub, this as Hub<object>);
    }
  };

  #frameOf(message: BackplaneMessage): string {
    let frame = message.frame;
    if (frame === undefined) {
      frame = encodeData(message.data, message.event, message.id);
      message.frame = frame;
    }
    return frame;
  }

  #accepts(filter: (message: HubMessage) => boolean, message: BackplaneMessage): boolean {
    try {
      return filter(message) === true;
    } catch (error) {
      this.#onError(error);
      return false;
    }
  }

  #attach(stream: Subscriber, topics: readonly string[], filter: SubscribeOptions['filter']): void {
    const existing = this.#subs.get(stream);
    if (existing) {
      const all = [...existing.group.topics, ...topics];
      if (filter !== undefined) existing.filter = filter;
      this.#leaveGroup(existing, existing.group);
      existing.group = this.#joinGroup(existing, all, existing.filter);
      return;
    }
    this.group.add(stream);
    // A stream's topics are its group's (sorted, unique): nothing per stream but this record.
    const sub: Subscription = {
      stream,
      filter,
      group: undefined as unknown as Group,
      cursor: this.#headSeq + 1,
      behind: false,
    };
    sub.group = this.#joinGroup(sub, topics, filter);
    stream.watchClose(this.#watcher);
    this.#subs.set(stream, sub);
  }

  #detach(stream: Subscriber): void {
    const sub = this.#subs.get(stream);
    if (sub === undefined) return;
    this.#subs.delete(stream);
    if (sub.behind) {
      this.#caughtUp(sub);
      this.#trim();
    }
    this.#leaveGroup(sub, sub.group);
    this.#stats.dropped += stream.droppedEvents;
    if (stream.closedForSlowness) this.#stats.slowClosed++;
  }

  #joinGroup(sub: Subscription, topics: readonly string[], filter: SubscribeOptions['filter']): Group {
    const sorted = [...new Set(topics)].sort();
    // Streams with a filter each form their own group: their chunks may differ. Keys must not collide
    // for any topic names (they come from users): a JSON array key always starts with '['.
    const key = filter === undefined ? JSON.stringify(sorted) : `#${++this.#filterKeys}`;
    let group = this.#groups.get(key);
    if (group === undefined) {
      group = {
        topics: sorted,
        topicSet: new Set(sorted),
        filter,
        subs: new Set(),
        parts: [],
        bytes: 0,
        lastMessage: 0,
        key,
        slice: undefined,
      };
      this.#groups.set(key, group);
      for (const topic of sorted) {
        let set = this.#byTopic.get(topic);
        if (set === undefined) {
          set = new Set();
          this.#byTopic.set(topic, set);
        }
        set.add(group);
      }
    }
    group.subs.add(sub);
    return group;
  }

  #leaveGroup(sub: Subscription, group: Group): void {
    group.subs.delete(sub);
    if (group.subs.size > 0) return;
    this.#groups.delete(group.key);
    for (const topic of group.topics) {
      const set = this.#byTopic.get(topic);
      set?.delete(group);
      if (set?.size === 0) this.#byTopic.delete(topic);
    }
  }
}

/**
 * Creates a hub. With no backplane it keeps history in memory (`history`, default 1000 messages);
 * give it `redisBackplane()` from `@ssekit/redis` to share topics, ids and history across instances.
 */
export function createHub<T extends object = TopicMap>(options: HubOptions = {}): Hub<T> {
  checkHubOptions(options);
  return new Hub<T>(options);
}

const HUB_OPTION_NAMES = [
  'backplane',
  'history',
  'gapEvent',
  'serialize',
  'onError',
  'maxConnections',
  'retryAfter',
  'maxBufferedBytes',
];
const HISTORY_OPTION_NAMES = ['size', 'ttl'];

function checkHubOptions(options: HubOptions): void {
  checkOptionNames(options, HUB_OPTION_NAMES, 'createHub()');
  const { backplane, history, gapEvent, serialize, onError } = options;
  if (backplane !== undefined && typeof (backplane as Backplane | null)?.subscribe !== 'function') {
    invalidOption('backplane must be a Backplane (memoryBackplane(), redisBackplane())');
  }
  if (history !== undefined && history !== false) {
    if (backplane !== undefined) invalidOption('history is for the in-memory backplane; configure it on the backplane');
    checkOptionNames(history, HISTORY_OPTION_NAMES, 'createHub() history');
  }
  if (gapEvent !== undefined) {
    if (typeof gapEvent !== 'string' || gapEvent === '') invalidOption('gapEvent must be a non-empty string');
    assertValidEventName(gapEvent);
  }
  if (serialize !== undefined && typeof serialize !== 'function') invalidOption('serialize must be a function');
  if (onError !== undefined && typeof onError !== 'function') invalidOption('onError must be a function');
  const max = options.maxBufferedBytes;
  if (max !== undefined && !(typeof max === 'number' && max > 0 && Number.isFinite(max))) {
    invalidOption(`maxBufferedBytes must be a positive number of bytes, got ${String(max)}`);
  }
}

/**
 * Checks a topic list (a string or a non-empty array of non-empty strings) and returns it as an array.
 * Adapters call it before a stream opens, so a bad list is an error answer, not a broken stream.
 * @throws {SseError} `ERR_SSE_INVALID_TOPIC`.
 */
export function checkTopics(topics: string | readonly string[]): string[] {
  const list = typeof topics === 'string' ? [topics] : Array.isArray(topics) ? [...topics] : undefined;
  if (list === undefined || list.length === 0) {
    throw new SseError('ERR_SSE_INVALID_TOPIC', 'topics must be a non-empty string or array of strings');
  }
  for (const topic of list) {
    if (typeof topic !== 'string' || topic === '') {
      throw new SseError('ERR_SSE_INVALID_TOPIC', `a topic must be a non-empty string, got ${JSON.stringify(topic)}`);
    }
  }
  return list;
}

/** True when `message` is published to one of `group`'s topics. */
function takes(group: Group, message: BackplaneMessage): boolean {
  for (const topic of message.topics) if (group.topicSet.has(topic)) return true;
  return false;
}
