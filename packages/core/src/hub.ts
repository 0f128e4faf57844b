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
import { utf8 } from './runtime.js';
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
}

interface Group {
  readonly topics: readonly string[];
  readonly filter: ((message: HubMessage) => boolean) | undefined;
  readonly streams: Set<Subscriber>;
  parts: string[];
  lastMessage: number;
  key: string;
}

interface Subscription {
  filter: ((message: HubMessage) => boolean) | undefined;
  group: Group;
}

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
  #messageCount = 0;
  #closed = false;
  #filterKeys = 0;
  readonly #stats = { published: 0, delivered: 0, frames: 0, bytes: 0, replays: 0, gaps: 0, dropped: 0, slowClosed: 0 };

  // Told when a subscribed stream closes: one object for the hub, no closure per stream.
  readonly #watcher: CloseWatcher = { memberClosed: (member) => this.#detach(member as Subscriber) };

  /** Use {@link createHub}, which checks the options. */
  constructor(options: HubOptions = {}) {
    this.group = new StreamGroup({ maxConnections: options.maxConnections, retryAfter: options.retryAfter });
    this.#ownsBackplane = options.backplane === undefined;
    this.#backplane =
      options.backplane ?? memoryBackplane(options.history === false ? { size: 0 } : (options.history ?? {}));
    this.#gapEvent = options.gapEvent ?? 'ssekit-gap';
    this.#serialize = options.serialize ?? JSON.stringify;
    this.#onError = options.onError ?? ((error) => console.error('[ssekit] hub:', error));
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
    this.#leaveGroup(stream, sub.group);
    if (left.length === 0) {
      stream.unwatchClose(this.#watcher);
      this.#subs.delete(stream);
      return;
    }
    sub.group = this.#joinGroup(stream, left, sub.filter);
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
      for (const topic of group.topics) counts.set(topic, (counts.get(topic) ?? 0) + group.streams.size);
    }
    const topics: Record<string, number> = Object.fromEntries(counts);
    let dropped = this.#stats.dropped;
    let slowClosed = this.#stats.slowClosed;
    for (const stream of this.#subs.keys()) dropped += stream.droppedEvents;
    for (const stream of this.#subs.keys()) if (stream.closedForSlowness) slowClosed++;
    return { ...this.#stats, dropped, slowClosed, streams: this.#subs.size, topics, refused: this.group.refused };
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

  // Writes this turn's messages: one joined chunk per group, the same chunk to each of its streams.
  #flush(): void {
    this.#scheduled = false;
    const turn = this.#turn;
    if (turn.length === 0) return;
    this.#turn = [];
    const touched: Group[] = [];
    for (const message of turn) {
      const n = ++this.#messageCount;
      let frame: string | undefined;
      for (const topic of message.topics) {
        const groups = this.#byTopic.get(topic);
        if (groups === undefined) continue;
        for (const group of groups) {
          if (group.lastMessage === n) continue;
          group.lastMessage = n;
          if (group.filter !== undefined && !this.#accepts(group.filter, message)) continue;
          frame ??= this.#frameOf(message);
          if (group.parts.length === 0) touched.push(group);
          group.parts.push(frame);
        }
      }
    }
    for (const group of touched) {
      const parts = group.parts;
      group.parts = [];
      const text = parts.length === 1 ? (parts[0] as string) : parts.join('');
      const size = group.streams.size;
      // One encoding to bytes for the whole group instead of one per socket.
      const chunk = size > 1 ? utf8(text) : text;
      this.#stats.frames += parts.length * size;
      this.#stats.bytes += chunk.length * size;
      for (const stream of group.streams) stream.deliver(chunk, parts.length);
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
      this.#leaveGroup(stream, existing.group);
      existing.group = this.#joinGroup(stream, all, existing.filter);
      return;
    }
    this.group.add(stream);
    // A stream's topics are its group's (sorted, unique): nothing per stream but this record.
    const sub: Subscription = { filter, group: this.#joinGroup(stream, topics, filter) };
    stream.watchClose(this.#watcher);
    this.#subs.set(stream, sub);
  }

  #detach(stream: Subscriber): void {
    const sub = this.#subs.get(stream);
    if (sub === undefined) return;
    this.#subs.delete(stream);
    this.#leaveGroup(stream, sub.group);
    this.#stats.dropped += stream.droppedEvents;
    if (stream.closedForSlowness) this.#stats.slowClosed++;
  }

  #joinGroup(stream: Subscriber, topics: readonly string[], filter: SubscribeOptions['filter']): Group {
    const sorted = [...new Set(topics)].sort();
    // Streams with a filter each form their own group: their chunks may differ. Keys must not collide
    // for any topic names (they come from users): a JSON array key always starts with '['.
    const key = filter === undefined ? JSON.stringify(sorted) : `#${++this.#filterKeys}`;
    let group = this.#groups.get(key);
    if (group === undefined) {
      group = { topics: sorted, filter, streams: new Set(), parts: [], lastMessage: 0, key };
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
    group.streams.add(stream);
    return group;
  }

  #leaveGroup(stream: Subscriber, group: Group): void {
    group.streams.delete(stream);
    if (group.streams.size > 0) return;
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

const HUB_OPTION_NAMES = ['backplane', 'history', 'gapEvent', 'serialize', 'onError', 'maxConnections', 'retryAfter'];
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
