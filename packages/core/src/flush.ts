/**
 * The once-per-turn flush queue. Streams and hubs that have something to write put themselves here
 * once per event-loop turn; one `setImmediate` for the whole process then lets each write what it
 * gathered in one socket write. This is what coalesces frames sent in the same turn, and it costs no
 * timer or closure per stream or per event.
 */

/** Something that gathered writes during this turn and writes them out in {@link Flushable.flush}. */
export interface Flushable {
  flush(): void;
}

const queue: Flushable[] = [];
let scheduled = false;

/** Queues `target` for the end of this turn. Callers keep their own flag so they queue once a turn. */
export function scheduleFlush(target: Flushable): void {
  queue.push(target);
  if (!scheduled) {
    scheduled = true;
    setImmediate(flushQueued);
  }
}

/**
 * Flushes everything queued so far, now. The hub calls it before it starts a replay, so that what was
 * published before the replay's cut-off point is written before the replay is.
 */
export function flushQueued(): void {
  scheduled = false;
  // Flushing may queue more (a hub batch makes streams write): the loop picks those up in order.
  for (let i = 0; i < queue.length; i++) {
    const target = queue[i] as Flushable;
    try {
      target.flush();
    } catch (err) {
      // A flush must not throw; if one does, the others still go out.
      queueMicrotask(() => {
        throw err;
      });
    }
  }
  queue.length = 0;
}
