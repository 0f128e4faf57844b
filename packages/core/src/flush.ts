/**
 * The once-per-turn flush queue. Streams and hubs that have something to write put themselves here
 * once per event-loop turn; one deferred callback for the whole process then lets each write what it
 * gathered in one socket write. This is what coalesces frames sent in the same turn, and it costs no
 * timer or closure per stream or per event: a queued entry is a shared function and its target.
 */
import { defer } from './runtime.js';

/** Writes out what `target` gathered this turn. One function serves every target of a kind. */
export type FlushFn<T> = (target: T) => void;

// Pairs: function, target, function, target, ...
const queue: unknown[] = [];
let scheduled = false;

/** Queues `flush(target)` for the end of this turn. Callers keep their own flag so they queue once a turn. */
export function scheduleFlush<T>(flush: FlushFn<T>, target: T): void {
  queue.push(flush, target);
  if (!scheduled) {
    scheduled = true;
    defer(flushQueued);
  }
}

/**
 * Flushes everything queued so far, now. The hub calls it before it starts a replay, so that what was
 * published before the replay's cut-off point is written before the replay is.
 */
export function flushQueued(): void {
  scheduled = false;
  // Flushing may queue more (a hub batch makes streams write): the loop picks those up in order.
  for (let i = 0; i < queue.length; i += 2) {
    const flush = queue[i] as FlushFn<unknown>;
    try {
      flush(queue[i + 1]);
    } catch (err) {
      // A flush must not throw; if one does, the others still go out.
      queueMicrotask(() => {
        throw err;
      });
    }
  }
  queue.length = 0;
}
