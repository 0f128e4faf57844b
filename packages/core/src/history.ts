/**
 * The replay ring: the last `size` messages (and none older than `ttl`), indexed by their sequence
 * number so that finding where a client left off costs O(1). It remembers, per topic, the newest
 * message it had to evict, which is what makes gap detection topic-aware: a client of topic A is not
 * told it missed something because topic B's traffic pushed old messages out.
 */
import { SseError } from './errors.js';

/** Bounds of the replay history. */
export interface HistoryOptions {
  /** Messages kept for replay; 0 keeps none (resume then only works when nothing was missed). Default 1000. */
  size?: number;
  /** Maximum age of a kept message in ms; 0 for no age limit. Default 0. */
  ttl?: number;
}

interface Slot<T> {
  seq: number;
  value: T;
  time: number;
  customId: string | undefined;
}

// Past this many distinct evicted topics, fall back to one process-wide mark (safe: may report a gap
// that was not one, never misses one).
const MAX_TRACKED_TOPICS = 10_000;

/** A bounded, topic-aware history of messages with contiguous sequence numbers. */
export class History<T extends { readonly topics: readonly string[] }> {
  readonly #size: number;
  readonly #ttl: number;
  readonly #ring: (Slot<T> | undefined)[];
  #start = 0;
  #count = 0;
  #headSeq = 1;
  readonly #customIds = new Map<string, number>();
  readonly #evictedByTopic = new Map<string, number>();
  #evictedAll = 0;

  constructor(options: HistoryOptions = {}) {
    const size = options.size ?? 1000;
    const ttl = options.ttl ?? 0;
    if (!Number.isSafeInteger(size) || size < 0) {
      throw new SseError('ERR_SSE_INVALID_OPTION', `history.size must be a whole number >= 0, got ${String(size)}`);
    }
    if (!(ttl >= 0) || !Number.isFinite(ttl)) {
      throw new SseError('ERR_SSE_INVALID_OPTION', `history.ttl must be ms >= 0, got ${String(ttl)}`);
    }
    this.#size = size;
    this.#ttl = ttl;
    this.#ring = new Array(size);
  }

  /** Messages currently held. */
  get length(): number {
    return this.#count;
  }

  /** Appends the message with sequence number `seq` (one more than the last). */
  push(seq: number, value: T, customId?: string): void {
    const now = this.#ttl ? Date.now() : 0;
    this.#expire(now);
    if (this.#count === 0) this.#headSeq = seq;
    if (this.#size === 0) {
      this.#headSeq = seq + 1;
      this.#markEvicted(seq, value);
      return;
    }
    if (this.#count === this.#size) this.#evictOldest();
    const slot: Slot<T> = { seq, value, time: now, customId };
    this.#ring[(this.#start + this.#count) % this.#size] = slot;
    this.#count++;
    if (customId !== undefined) this.#customIds.set(customId, seq);
  }

  /**
   * Messages for `topics` with sequence numbers in (`seq`, `upTo`], in order; `undefined` when some
   * message of those topics in that range was evicted (a gap).
   */
  after(seq: number, topics: readonly string[], upTo: number): T[] | undefined {
    this.#expire(this.#ttl ? Date.now() : 0);
    if (this.#lost(seq, topics)) return undefined;
    const out: T[] = [];
    const first = Math.max(seq + 1, this.#headSeq);
    // A Set when the client asked for many topics: the cost is then per message, not messages × topics.
    const wanted = topics.length > 8 ? new Set(topics) : topics;
    for (let s = first; s <= upTo && s - this.#headSeq < this.#count; s++) {
      const slot = this.#ring[(this.#start + (s - this.#headSeq)) % this.#size] as Slot<T>;
      if (matches(slot.value.topics, wanted)) out.push(slot.value);
    }
    return out;
  }

  /** The oldest message held, if any. */
  oldest(): T | undefined {
    this.#expire(this.#ttl ? Date.now() : 0);
    return this.#count === 0 ? undefined : this.#ring[this.#start]?.value;
  }

  /** The sequence number of a message published with a caller-chosen id, while it is held. */
  seqOfCustomId(id: string): number | undefined {
    return this.#customIds.get(id);
  }

  #lost(seq: number, topics: readonly string[]): boolean {
    if (seq + 1 >= this.#headSeq) return false;
    if (this.#evictedAll > seq) return true;
    for (const topic of topics) {
      if ((this.#evictedByTopic.get(topic) ?? 0) > seq) return true;
    }
    return false;
  }

  #expire(now: number): void {
    if (!this.#ttl) return;
    const limit = now - this.#ttl;
    while (this.#count > 0 && (this.#ring[this.#start] as Slot<T>).time < limit) this.#evictOldest();
  }

  #evictOldest(): void {
    const slot = this.#ring[this.#start] as Slot<T>;
    this.#ring[this.#start] = undefined;
    this.#start = (this.#start + 1) % this.#size;
    this.#count--;
    this.#headSeq = slot.seq + 1;
    if (slot.customId !== undefined && this.#customIds.get(slot.customId) === slot.seq) {
      this.#customIds.delete(slot.customId);
    }
    this.#markEvicted(slot.seq, slot.value);
  }

  #markEvicted(seq: number, value: T): void {
    for (const topic of value.topics) this.#evictedByTopic.set(topic, seq);
    if (this.#evictedByTopic.size > MAX_TRACKED_TOPICS) {
      this.#evictedAll = seq;
      this.#evictedByTopic.clear();
    }
  }
}

function matches(messageTopics: readonly string[], wanted: readonly string[] | ReadonlySet<string>): boolean {
  if (Array.isArray(wanted)) {
    for (const topic of messageTopics) if (wanted.includes(topic)) return true;
    return false;
  }
  for (const topic of messageTopics) if ((wanted as ReadonlySet<string>).has(topic)) return true;
  return false;
}
