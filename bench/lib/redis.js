/**
 * The Redis part of the benchmark: publish→receive latency p50/p99 at 1,000 events/s and
 * burst throughput, cross-instance (published on instance A, delivered by instance B through one
 * Redis stream) against the in-memory hub (one instance publishing to its own clients), same run.
 * Targets: p99 ≤ 5 ms; throughput ≥ 0.8× the in-memory hub.
 *
 * Skipped, with the reason printed, when @ssekit/redis is not built or Redis is unreachable
 * (REDIS_URL, default redis://127.0.0.1:6379).
 */
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { Child } from './child.js';
import { median } from './driver.js';

const SERVER = fileURLToPath(new URL('./server.js', import.meta.url));
const LOADGEN = fileURLToPath(new URL('./loadgen.js', import.meta.url));
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const SIZES = {
  full: { n: 20, rate: 1000, latencyMs: 5000, m: 5000, size: 100, perTurn: 10, rounds: 3 },
  quick: { n: 5, rate: 1000, latencyMs: 500, m: 500, size: 100, perTurn: 10, rounds: 1 },
};

export async function redisWorkload({ quick, log, profDir }) {
  const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  try {
    const mod = await import('@ssekit/redis');
    if (typeof mod.redisBackplane !== 'function') return skip('@ssekit/redis does not export redisBackplane()', log);
  } catch (error) {
    return skip(`@ssekit/redis cannot be loaded (run pnpm build): ${error.message}`, log);
  }
  if (!(await reachable(url))) return skip(`Redis is unreachable at ${url}`, log);

  const w = quick ? SIZES.quick : SIZES.full;
  const rows = [];
  const errors = [];
  for (const mode of ['memory', 'redis']) {
    const rounds = [];
    for (let round = 0; round < w.rounds; round++) {
      try {
        const r = await run(mode, url, w, profDir);
        rounds.push(r);
        log(
          `  ${mode} round ${round + 1}: p50 ${(r.p50 / 1000).toFixed(2)} ms, p99 ${(r.p99 / 1000).toFixed(2)} ms at ` +
            `${w.rate} events/s; burst ${Math.round(r.eventsPerSec / 1000)}k events/s; delivered ${r.ok ? 'all' : 'NOT all'}`,
        );
        if (!r.ok) errors.push(`${mode}: ${r.note}`);
      } catch (error) {
        errors.push(`${mode}: ${error.message ?? error}`);
        log(`  ${mode} round ${round + 1}: FAILED ${error.message ?? error}`);
      }
    }
    rows.push({
      mode,
      label: mode === 'memory' ? 'in-memory hub (same instance)' : 'Redis backplane (cross-instance)',
      p50: median(rounds.map((r) => r.p50)),
      p99: median(rounds.map((r) => r.p99)),
      eventsPerSec: median(rounds.map((r) => r.eventsPerSec)),
      ok: rounds.length === w.rounds && rounds.every((r) => r.ok),
    });
  }
  const [memory, redis] = rows;
  redis.x = redis.eventsPerSec / memory.eventsPerSec;
  memory.x = 1;
  return {
    sizes: w,
    rows,
    ok: rows.every((r) => r.ok),
    errors,
    targets: [
      { name: 'cross-instance p99 ≤ 5 ms at 1,000 events/s', value: redis.p99 / 1000, pass: redis.p99 <= 5000 },
      { name: 'throughput ≥ 0.8× the in-memory hub', value: redis.x, pass: redis.x >= 0.8 },
    ],
    notes: [
      `${w.n} clients; latency: ${w.rate} events/s for ${w.latencyMs / 1000} s; burst: ${w.m} events × ${w.size} B, ` +
        `${w.perTurn} per turn; delivered events/s = clients × events / time to the last. Medians of ${w.rounds} rounds.`,
    ],
  };
}

function skip(reason, log) {
  log(`  skipped: ${reason}`);
  return { skipped: reason };
}

function reachable(url) {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = net.connect({ host: hostname || '127.0.0.1', port: Number(port) || 6379 });
    const done = (ok) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** One round: publisher A (or the same instance), subscriber B with the clients. */
async function run(mode, url, w, profDir) {
  const stream = `ssekit-bench-${process.pid}-${Date.now()}`;
  const execArgv = ['--expose-gc'];
  if (profDir) execArgv.push('--cpu-prof', `--cpu-prof-dir=${profDir}`);
  const env = { BENCH_REDIS_URL: url, BENCH_REDIS_STREAM: stream, BENCH_KEEPALIVE: '15000' };
  const file = mode === 'memory' ? 'ssekit-core.js' : 'ssekit-redis.js';
  const subscriber = new Child(SERVER, [file], { name: `${mode} subscriber`, execArgv, env });
  const publisher =
    mode === 'memory'
      ? subscriber
      : new Child(SERVER, [file], { name: 'redis publisher', execArgv, env: { ...env, BENCH_REDIS_CLEANUP: '1' } });
  const loadgen = new Child(LOADGEN, [], { name: 'loadgen' });
  try {
    const [{ port }] = await Promise.all([subscriber.ready, publisher.ready, loadgen.ready]);
    const connected = await loadgen.call('connect', { port, n: w.n });
    if (connected.failed > 0) throw new Error(`${connected.failed} connections failed`);
    while ((await subscriber.call('count')).count < w.n) await sleep(20);

    // Warm-up, then the latency run at a steady rate.
    await loadgen.call('expect', { m: 100, timeoutMs: 30_000 });
    await publisher.call('burst', { m: 100, size: w.size, perTurn: w.perTurn });
    await loadgen.call('wait', {}, 40_000);
    const total = Math.round((w.rate * w.latencyMs) / 1000);
    await loadgen.call('expect', { m: total, latency: true, timeoutMs: w.latencyMs + 30_000 });
    await publisher.call('rate', { rate: w.rate, ms: w.latencyMs, size: w.size });
    const latencyEnd = await loadgen.call('wait', {}, w.latencyMs + 40_000);
    const lat = await loadgen.call('latency');
    const latencyCheck = await loadgen.call('verify');

    // Throughput: a burst published on A, timed until B's last client has every event.
    const { targets } = await loadgen.call('expect', { m: w.m, timeoutMs: 60_000 });
    const start = await publisher.call('burst', { m: w.m, size: w.size, perTurn: w.perTurn });
    const end = await loadgen.call('wait', {}, 70_000);
    await sleep(100);
    const burstCheck = await loadgen.call('verify');
    const ok =
      latencyEnd.done &&
      latencyCheck.min === total &&
      latencyCheck.max === total &&
      end.done &&
      burstCheck.min === w.m &&
      burstCheck.max === w.m;
    return {
      ok,
      note: `latency run min ${latencyCheck.min}/max ${latencyCheck.max} of ${total}; burst min ${burstCheck.min}/max ${burstCheck.max} of ${w.m}`,
      p50: lat.p50,
      p99: lat.p99,
      eventsPerSec: (targets * w.m) / ((end.t - start.t0) / 1e6),
    };
  } finally {
    await Promise.all([loadgen.stop(), publisher === subscriber ? undefined : publisher.stop(), subscriber.stop()]);
  }
}
