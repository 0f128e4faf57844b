/**
 * Workload sizes. `full` is what `pnpm bench` runs (about 10 minutes on 2 cores); `quick` is the smoke
 * run of `.ci/run` and the vitest smoke test: small sizes, one round, and it only asserts delivery.
 */
export const FULL = {
  keepalive: 15_000,
  timeoutMs: 120_000,
  workloads: {
    // (a) the headline: 2,000 clients × 200 events × 100 B, published 10 per event-loop turn.
    fanout: { n: 2000, m: 200, size: 100, perTurn: 10, rounds: 3 },
    // (a) again at 10,000 clients, one round of 50 events (2,000,000 deliveries would take minutes for
    // the per-write variants on 2 cores).
    fanout10k: { n: 10_000, m: 50, size: 100, perTurn: 10, rounds: 1 },
    // (c) 1 % of 100 clients stop reading. 8 KiB events so that each client is sent ~4.9 MB, more than
    // the ~4 MB a loopback socket absorbs in kernel buffers: only then does a server have to queue.
    slow: { n: 100, m: 600, size: 8192, perTurn: 10, slowEvery: 100, rounds: 3 },
    // (b) + (d) on the same 10,000 connections: an idle window of two keepalive periods (15 s), then
    // 10 events/s for 5 s (500,000 deliveries timed).
    idle: { n: 10_000, windowMs: 30_000, rate: 10, latencyMs: 5000, size: 100, rounds: 1 },
  },
};

export const QUICK = {
  keepalive: 15_000,
  timeoutMs: 10_000,
  workloads: {
    fanout: { n: 200, m: 50, size: 100, perTurn: 10, rounds: 1 },
    slow: { n: 100, m: 50, size: 1000, perTurn: 10, slowEvery: 100, rounds: 1 },
    idle: { n: 300, windowMs: 500, settleMs: 200, rate: 10, latencyMs: 1000, size: 100 },
  },
};
