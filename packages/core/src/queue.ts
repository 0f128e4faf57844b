/**
 * A stream's outgoing queue: frames waiting for the end of the turn or for the client to drain, with
 * how many events each holds (so that a drop can be counted in events) and their total size.
 */
import { type Chunk, join, sizeOf } from './runtime.js';

export class OutgoingQueue {
  // Emptied in place: no new arrays per flush.
  readonly #chunks: Chunk[] = [];
  readonly #events: number[] = [];
  #bytes = 0;

  /** Bytes queued (string length for text). */
  get bytes(): number {
    return this.#bytes;
  }

  /** Chunks queued. */
  get length(): number {
    return this.#chunks.length;
  }

  /** Events queued. */
  get events(): number {
    let total = 0;
    for (const n of this.#events) total += n;
    return total;
  }

  push(chunk: Chunk, events: number): void {
    this.#chunks.push(chunk);
    this.#events.push(events);
    this.#bytes += sizeOf(chunk);
  }

  /** Puts `chunk` ahead of everything queued (a replay ahead of what was held behind it). */
  unshift(chunk: Chunk, events: number): void {
    this.#chunks.unshift(chunk);
    this.#events.unshift(events);
    this.#bytes += sizeOf(chunk);
  }

  /** Everything queued as one chunk, and empties the queue. */
  take(): Chunk {
    const chunks = this.#chunks;
    const chunk = chunks.length === 1 ? (chunks[0] as Chunk) : join(chunks);
    this.clear();
    return chunk;
  }

  /**
   * Drops whole chunks, oldest first, until at most `limit` bytes are queued (always keeping the
   * newest), and returns the events dropped. What the socket holds is untouched, so the client never
   * sees a partial frame.
   */
  dropOldest(limit: number): number {
    let dropped = 0;
    while (this.#bytes > limit && this.#chunks.length > 1) {
      this.#bytes -= sizeOf(this.#chunks.shift() as Chunk);
      dropped += this.#events.shift() as number;
    }
    return dropped;
  }

  clear(): void {
    this.#chunks.length = 0;
    this.#events.length = 0;
    this.#bytes = 0;
  }
}
