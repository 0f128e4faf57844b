/**
 * The backplane: what sits under a hub. It assigns event ids (one ordered source), keeps the history
 * replays read from, and carries every published message to every hub that shares it. Like go-sse's
 * Provider/Replayer pair, "in memory" and "distributed" are two implementations of this one contract:
 * {@link memoryBackplane} here, `redisBackplane` in `@ssekit/redis`.
 */
import { SseError } from './errors.js';
import { assertValidEventName, assertValidId } from './frame.js';
import { History, type HistoryOptions } from './history.js';

/** A published message as every hub receives it. */
export interface BackplaneMessage {
  /** The SSE event id, assigned by the backplane (or given by the publisher). */
  readonly id: string;
  /** Topics the message was published to. */
  readonly topics: readonly string[];
  /** The event type, if any. */
  readonly event?: string | undefined;
  /** The payload, already serialized to text (serialized once, by the publishing hub). */
  readonly data: string;
  /** The encoded frame, cached by the first hub that encodes it (in-process backplanes share it). */
  frame?: string;
}

/** What a hub hands the backplane to publish. */
export interface PublishRequest {
  readonly topics: readonly string[];
  readonly event?: string | undefined;
  readonly data: string;
  /** A caller-chosen id; the backplane assigns one when absent. */
  readonly id?: string | undefined;
}

/** The answer to a replay request. */
export type ReplayResult =
  /** Everything after the requested id, for the topics, in order (possibly none). */
  | { readonly gap: false; readonly messages: readonly BackplaneMessage[] }
  /** The id is unknown or history since it was lost: the client must refetch state. */
  | { readonly gap: true; readonly oldest: string | undefined };

/**
 * The contract between a hub and where its messages live. Implementations must deliver messages to
 * listeners in id order, once each, and make `replay()` consistent with `position`.
 */
export interface Backplane {
  /**
   * Stores and distributes a message; resolves to its id once it is accepted (rejects when it was not:
   * the caller knows, nothing is lost silently).
   */
  publish(message: PublishRequest): Promise<string>;
  /** Receives every message published by any hub sharing this backplane, in order. Returns unsubscribe. */
  subscribe(listener: (message: BackplaneMessage) => void): () => void;
  /** The id of the last message delivered to listeners, if any: the cut-off between replay and live. */
  readonly position: string | undefined;
  /**
   * Messages for `topics` after `afterId` up to and including `upTo` (the {@link position} when the
   * replay began; messages after it reach the subscriber live), or a gap.
   */
  replay(afterId: string, topics: readonly string[], upTo: string | undefined): ReplayResult | Promise<ReplayResult>;
  /**
   * Optional, for backplanes whose delivery to this process can lag behind what others published
   * (Redis): resolves `true` once the message `id` has been delivered here (at once if it already
   * was), `false` if `id` is not one of its ids or did not arrive within `timeoutMs`. The hub awaits it
   * before resuming a client that comes back with an id issued elsewhere, so that the resume point is
   * never ahead of this instance (which would look like a gap and replay nothing).
   */
  waitFor?(id: string, timeoutMs?: number): Promise<boolean>;
  /** Releases connections and timers. */
  close(): Promise<void>;
}

/** Options of {@link memoryBackplane}. */
export interface MemoryBackplaneOptions extends HistoryOptions {}

/**
 * The in-process backplane (the default): ids are `<epoch>-<seq>`, where the epoch is the start time
 * of this backplane, so that an id from before a restart is recognised as unknown (a gap) instead of
 * being mistaken for a new event.
 */
export function memoryBackplane(options: MemoryBackplaneOptions = {}): Backplane {
  return new MemoryBackplane(options);
}

class MemoryBackplane implements Backplane {
  readonly #history: History<BackplaneMessage>;
  readonly #listeners = new Set<(message: BackplaneMessage) => void>();
  // workerd's clock reads 0 until the first I/O (a hub created at module top level): a random epoch
  // then keeps ids from one isolate's life apart from the next one's.
  readonly #epoch = (Date.now() || Math.floor(Math.random() * 2 ** 41)).toString(36);
  readonly #prefix = `${this.#epoch}-`;
  #seq = 0;
  #closed = false;

  constructor(options: MemoryBackplaneOptions) {
    this.#history = new History(options);
  }

  get position(): string | undefined {
    return `${this.#prefix}${this.#seq}`;
  }

  publish(request: PublishRequest): Promise<string> {
    if (this.#closed) return Promise.reject(new SseError('ERR_SSE_CLOSED', 'the backplane is closed'));
    try {
      if (request.id !== undefined) assertValidId(request.id);
      if (request.event !== undefined) assertValidEventName(request.event);
    } catch (err) {
      return Promise.reject(err);
    }
    const seq = ++this.#seq;
    const message: BackplaneMessage = {
      id: request.id ?? `${this.#prefix}${seq}`,
      topics: request.topics,
      event: request.event,
      data: request.data,
    };
    this.#history.push(seq, message, request.id);
    for (const listener of this.#listeners) listener(message);
    return Promise.resolve(message.id);
  }

  subscribe(listener: (message: BackplaneMessage) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  replay(afterId: string, topics: readonly string[]): ReplayResult {
    const seq = this.#seqOf(afterId);
    const found = seq === undefined ? undefined : this.#history.after(seq, topics, this.#seq);
    if (found === undefined) return { gap: true, oldest: this.#history.oldest()?.id };
    return { gap: false, messages: found };
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#listeners.clear();
  }

  #seqOf(id: string): number | undefined {
    if (id.startsWith(this.#prefix)) {
      const text = id.slice(this.#prefix.length);
      const seq = Number(text);
      if (Number.isSafeInteger(seq) && seq >= 0 && seq <= this.#seq && String(seq) === text) return seq;
      return undefined;
    }
    return this.#history.seqOfCustomId(id);
  }
}
