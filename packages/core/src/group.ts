/**
 * A set of open streams with an optional connection limit: what `maxConnections`, `closeAll()` and a
 * framework's shutdown hook need. Every stream belongs to the process-wide {@link allStreams} group and
 * to at most one more (a middleware's, a plugin's or a hub's).
 */
import { SseError } from './errors.js';

/** The part of an event stream a group needs. */
export interface GroupMember {
  /** Closes the stream, first telling the client to reconnect after `retry` ms when given. */
  close(options?: CloseOptions): void;
  /** Registers a callback for when the stream closes; returns a function that removes it. */
  onClose(callback: () => void): () => void;
  /**
   * Registers a long-lived watcher (a group, a hub) told when the stream closes. Unlike `onClose` it
   * costs no closure per stream: one watcher object serves all its streams. Idempotent.
   */
  watchClose(watcher: CloseWatcher): void;
  /** Removes a watcher. */
  unwatchClose(watcher: CloseWatcher): void;
}

/** Told when a watched stream closes (see {@link GroupMember.watchClose}), and when it can take writes again. */
export interface CloseWatcher {
  memberClosed(member: GroupMember): void;
  /** The member was not writable (its client behind, or held) and is again: a hub writes what it owes it. */
  memberWritable?(member: GroupMember): void;
}

/** Options for closing one or many streams. */
export interface CloseOptions {
  /**
   * Reconnection delay to tell clients before the stream ends (a `retry:` field), so that after a
   * deploy they come back at that pace. Without it clients use their last hint (browsers: ~3 s).
   */
  retry?: number;
}

/** Options for {@link StreamGroup}. */
export interface StreamGroupOptions {
  /** Refuse new streams past this many open ones with 503 + `Retry-After`. Default: no limit. */
  maxConnections?: number;
  /** The `Retry-After` value, in seconds, sent with that 503. Default 5. */
  retryAfter?: number;
}

/** A set of open streams: counts them, limits them, closes them all. */
export class StreamGroup {
  readonly #members = new Set<GroupMember>();
  // Told when a member closes: one object for the group, no closure per stream.
  readonly #watcher: CloseWatcher = { memberClosed: (member) => this.#members.delete(member) };
  readonly #max: number;
  readonly #retryAfter: string;
  #refused = 0;

  constructor(options: StreamGroupOptions = {}) {
    const max = options.maxConnections ?? Number.POSITIVE_INFINITY;
    if (!(max >= 0)) {
      throw new SseError('ERR_SSE_INVALID_OPTION', `maxConnections must be a number >= 0, got ${String(max)}`);
    }
    const after = options.retryAfter ?? 5;
    if (!Number.isSafeInteger(after) || after < 0) {
      throw new SseError('ERR_SSE_INVALID_OPTION', `retryAfter must be whole seconds >= 0, got ${String(after)}`);
    }
    this.#max = max;
    this.#retryAfter = String(after);
  }

  /** Open streams in the group. */
  get size(): number {
    return this.#members.size;
  }

  /** Connections refused because the group was full. */
  get refused(): number {
    return this.#refused;
  }

  /**
   * Throws the 503 error when the group is full. Call before anything is written, so the client gets
   * a plain 503 + `Retry-After` response, not a broken stream.
   * @throws {SseError} `ERR_SSE_TOO_MANY_CONNECTIONS` with `status` 503 and a `Retry-After` header.
   */
  admit(): void {
    if (this.#members.size < this.#max) return;
    this.#refused++;
    throw new SseError('ERR_SSE_TOO_MANY_CONNECTIONS', `too many open streams (limit ${this.#max})`, {
      status: 503,
      headers: { 'Retry-After': this.#retryAfter },
    });
  }

  /** Adds an open stream; it leaves the group when it closes. */
  add(member: GroupMember): void {
    if (this.#members.has(member)) return;
    this.#members.add(member);
    member.watchClose(this.#watcher);
  }

  /** Closes every stream in the group (see {@link CloseOptions.retry}). */
  closeAll(options?: CloseOptions): void {
    for (const member of [...this.#members]) member.close(options);
  }

  [Symbol.iterator](): IterableIterator<GroupMember> {
    return this.#members.values();
  }
}

/** Every open stream of the process: `closeAll()` closes them on shutdown. */
export const allStreams: StreamGroup = new StreamGroup();

/**
 * Closes every open stream in the process, telling clients when to come back (`retry`). Call it from
 * a SIGTERM handler before `server.close()`, which otherwise waits for streams that never end.
 */
export function closeAll(options?: CloseOptions): void {
  allStreams.closeAll(options);
}
