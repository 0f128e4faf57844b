/**
 * The driver: starts each variant's server process and a load-generator process, runs the workloads
 * over IPC and collects raw figures. Every figure comes from the process that owns it: CPU time and
 * RSS from the server's own `process.cpuUsage()` / `process.memoryUsage()`, delivery times from the
 * load generator, both on the same monotonic clock (clock.js).
 */
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Child } from './child.js';

const SERVER = fileURLToPath(new URL('./server.js', import.meta.url));
const LOADGEN = fileURLToPath(new URL('./loadgen.js', import.meta.url));

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export function median(values) {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Runs one server + one load generator; `body` gets both and their teardown is guaranteed. */
async function session(variant, config, body) {
  const execArgv = ['--expose-gc'];
  if (config.profDir) {
    mkdirSync(config.profDir, { recursive: true });
    execArgv.push(
      '--cpu-prof',
      `--cpu-prof-dir=${config.profDir}`,
      `--cpu-prof-name=${variant.id}-${Date.now()}.cpuprofile`,
    );
  }
  const server = new Child(SERVER, [variant.file], {
    name: `server ${variant.id}`,
    execArgv,
    env: { BENCH_KEEPALIVE: String(config.keepalive) },
  });
  const loadgen = new Child(LOADGEN, [], { name: 'loadgen' });
  try {
    const [{ port }] = await Promise.all([server.ready, loadgen.ready]);
    return await body(server, loadgen, port);
  } finally {
    await Promise.all([server.stop(), loadgen.stop()]);
  }
}

async function connect(server, loadgen, port, n, options = {}) {
  const result = await loadgen.call('connect', { port, n, concurrency: 256, ...options });
  if (result.failed > 0) {
    throw new Error(`${result.failed} of ${n} connections failed: ${JSON.stringify(result.errors)}`);
  }
  // The head reaching the client does not mean the variant has registered the stream yet.
  const deadline = Date.now() + 30_000;
  for (;;) {
    const { count } = await server.call('count');
    if (count >= n) break;
    if (Date.now() > deadline) throw new Error(`the server holds ${count} of ${n} streams`);
    await sleep(50);
  }
  return result;
}

/** One burst of m events; returns delivery rate, CPU per event and the delivery check. */
async function burst(server, loadgen, { m, size, perTurn, skipSlow = false, timeoutMs }) {
  const { targets } = await loadgen.call('expect', { m, skipSlow, timeoutMs });
  const lg0 = await loadgen.call('cpu');
  const start = await server.call('burst', { m, size, perTurn });
  const end = await loadgen.call('wait', {}, timeoutMs + 10_000);
  const cpu = await server.call('cpu');
  const lg1 = await loadgen.call('cpu');
  await sleep(100);
  const check = await loadgen.call('verify');
  const events = targets * m;
  const seconds = (end.t - start.t0) / 1e6;
  return {
    ok: end.done && check.min === m && check.max === m,
    targets,
    events,
    seconds,
    eventsPerSec: events / seconds,
    cpuPerEventUs: (cpu.cpu - start.cpu0) / events,
    // How busy the load generator was: near 100 % means the figure is bound by the client side.
    loadgenCpuPct: ((lg1.cpu - lg0.cpu) / (lg1.t - lg0.t)) * 100,
    min: check.min,
    max: check.max,
    closed: check.closed,
  };
}

function deliveryNote(r, m) {
  return r.ok ? undefined : `delivered min ${r.min} / max ${r.max} of ${m} events per client (${r.closed} closed)`;
}

/**
 * A workload is run round by round: `round()` is one fresh server + load generator and returns its
 * figures (or throws), `aggregate()` takes the medians. run.js interleaves rounds across variants, so
 * that a change in machine load during the run hits every variant alike.
 */

/** (a) fan-out: N connections × M events × S bytes. */
export const fanout = {
  async round(variant, config, w, log, index) {
    const warmM = Math.min(20, w.m);
    const r = await session(variant, config, async (server, loadgen, port) => {
      await connect(server, loadgen, port, w.n);
      // Warm the JIT of both processes on a small burst first.
      const warm = await burst(server, loadgen, {
        m: warmM,
        size: w.size,
        perTurn: w.perTurn,
        timeoutMs: config.timeoutMs,
      });
      if (!warm.ok) return { ...warm, warmUp: true };
      return burst(server, loadgen, { m: w.m, size: w.size, perTurn: w.perTurn, timeoutMs: config.timeoutMs });
    });
    log(
      `  round ${index + 1}: ${fmt(r.eventsPerSec / 1000, 0)}k events/s, ${fmt(r.cpuPerEventUs, 2)} µs CPU/event ` +
        `(load generator ${fmt(r.loadgenCpuPct, 0)} % busy), ` +
        `delivered ${r.ok ? 'all' : 'NOT all'} ${r.events} events${r.warmUp ? ' (warm-up burst)' : ''}`,
    );
    const note = deliveryNote(r, r.warmUp ? warmM : w.m);
    return { result: r, errors: note ? [note] : [] };
  },
  aggregate(w, rounds, errors) {
    return {
      n: w.n,
      m: w.m,
      size: w.size,
      rounds,
      ok: rounds.length === w.rounds && rounds.every((r) => r.ok) && errors.length === 0,
      eventsPerSec: median(rounds.map((r) => r.eventsPerSec)),
      cpuPerEventUs: median(rounds.map((r) => r.cpuPerEventUs)),
      errors,
    };
  },
};

/** (c) slow consumers: the same burst with every reader, then with 1 % not reading; the others' rate. */
export const slow = {
  async round(variant, config, w, log, index) {
    const r = await session(variant, config, async (server, loadgen, port) => {
      await connect(server, loadgen, port, w.n, { slowEvery: w.slowEvery });
      const opts = { m: w.m, size: w.size, perTurn: w.perTurn, skipSlow: true, timeoutMs: config.timeoutMs };
      const warm = await burst(server, loadgen, { ...opts, m: Math.min(20, w.m) });
      if (!warm.ok) throw new Error(`warm-up burst: ${deliveryNote(warm, Math.min(20, w.m))}`);
      const base = await burst(server, loadgen, opts);
      const mem0 = await server.call('mem');
      const { paused } = await loadgen.call('pauseSlow');
      const withSlow = await burst(server, loadgen, opts);
      const mem1 = await server.call('mem');
      return {
        base,
        withSlow,
        paused,
        rssGrowth: mem1.rss - mem0.rss,
        ratio: withSlow.eventsPerSec / base.eventsPerSec,
      };
    });
    log(
      `  round ${index + 1}: ${r.paused} clients stopped reading; the others got ` +
        `${fmt(r.withSlow.eventsPerSec / 1000, 0)}k events/s vs ${fmt(r.base.eventsPerSec / 1000, 0)}k without ` +
        `(×${fmt(r.ratio, 2)}); server RSS +${fmt(r.rssGrowth / 2 ** 20, 1)} MiB; ` +
        `delivered ${r.base.ok && r.withSlow.ok ? 'all' : 'NOT all'}`,
    );
    const errors = [deliveryNote(r.base, w.m), deliveryNote(r.withSlow, w.m)].filter(Boolean);
    return { result: r, errors };
  },
  aggregate(w, rounds, errors) {
    return {
      n: w.n,
      m: w.m,
      size: w.size,
      slow: rounds[0]?.paused ?? 0,
      rounds,
      ok: rounds.length === w.rounds && rounds.every((r) => r.base.ok && r.withSlow.ok) && errors.length === 0,
      ratio: median(rounds.map((r) => r.ratio)),
      eventsPerSec: median(rounds.map((r) => r.withSlow.eventsPerSec)),
      baseEventsPerSec: median(rounds.map((r) => r.base.eventsPerSec)),
      rssGrowth: median(rounds.map((r) => r.rssGrowth)),
      errors,
    };
  },
};

/**
 * (b) idle and (d) latency on the same 10,000 connections: RSS per connection after GC, CPU over an
 * idle window with keepalive on, then publish→receive latency at a steady rate.
 */
async function idleRound(variant, config, w, log) {
  const errors = [];
  const result = await session(variant, config, async (server, loadgen, port) => {
    const mem0 = await server.call('mem');
    const conn = await connect(server, loadgen, port, w.n);
    await sleep(w.settleMs ?? 1000);
    const mem1 = await server.call('mem');
    const rssPerConn = (mem1.rss - mem0.rss) / w.n;
    const heapPerConn = (mem1.heap - mem0.heap) / w.n;
    const cpuA = await server.call('cpu');
    await sleep(w.windowMs);
    const cpuB = await server.call('cpu');
    const idleCpuPct = ((cpuB.cpu - cpuA.cpu) / (cpuB.t - cpuA.t)) * 100;
    log(
      `  idle: ${w.n} connections in ${conn.ms} ms; ${fmt(rssPerConn / 1024, 2)} KiB RSS/conn ` +
        `(${fmt(heapPerConn / 1024, 2)} KiB heap); ${fmt(idleCpuPct, 2)} % of a core over ${w.windowMs / 1000} s`,
    );
    const total = Math.max(1, Math.round((w.rate * w.latencyMs) / 1000));
    await loadgen.call('expect', { m: total, latency: true, timeoutMs: w.latencyMs + 60_000 });
    const lg0 = await loadgen.call('cpu');
    await server.call('rate', { rate: w.rate, ms: w.latencyMs, size: w.size });
    const end = await loadgen.call('wait', {}, 120_000);
    const lg1 = await loadgen.call('cpu');
    const loadgenCpuPct = ((lg1.cpu - lg0.cpu) / (lg1.t - lg0.t)) * 100;
    const lat = await loadgen.call('latency');
    const check = await loadgen.call('verify');
    const ok = end.done && check.min === total && check.max === total;
    if (!ok) errors.push(`latency: delivered min ${check.min} / max ${check.max} of ${total} events per client`);
    log(
      `  latency: ${w.rate} events/s to ${w.n} clients: p50 ${fmt(lat.p50 / 1000, 1)} ms, p99 ${fmt(lat.p99 / 1000, 1)} ms, ` +
        `max ${fmt(lat.max / 1000, 1)} ms over ${lat.samples} deliveries (load generator ${fmt(loadgenCpuPct, 0)} % busy); ` +
        `delivered ${ok ? 'all' : 'NOT all'}`,
    );
    return {
      n: w.n,
      ok,
      idle: { rssPerConn, heapPerConn, cpuPct: idleCpuPct, windowMs: w.windowMs, connectMs: conn.ms },
      latency: {
        rate: w.rate,
        events: total,
        p50: lat.p50,
        p90: lat.p90,
        p99: lat.p99,
        max: lat.max,
        samples: lat.samples,
      },
    };
  });
  return { result, errors };
}

export const idle = {
  round: idleRound,
  aggregate(w, rounds, errors) {
    if (rounds.length === 0) return { n: w.n, ok: false, errors };
    const pick = (get) => median(rounds.map(get));
    return {
      n: w.n,
      rounds,
      ok: rounds.length === (w.rounds ?? 1) && rounds.every((r) => r.ok) && errors.length === 0,
      idle: {
        rssPerConn: pick((r) => r.idle.rssPerConn),
        heapPerConn: pick((r) => r.idle.heapPerConn),
        cpuPct: pick((r) => r.idle.cpuPct),
        windowMs: w.windowMs,
      },
      latency: {
        rate: w.rate,
        events: rounds[0].latency.events,
        p50: pick((r) => r.latency.p50),
        p90: pick((r) => r.latency.p90),
        p99: pick((r) => r.latency.p99),
        max: pick((r) => r.latency.max),
      },
      errors,
    };
  },
};

export function fmt(value, digits = 1) {
  if (!Number.isFinite(value)) return '–';
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}
