#!/usr/bin/env node
/**
 * The benchmark: `node run.js` (full, ~10 min on 2 cores) or `node run.js --quick` (smoke run: small
 * sizes, exits non-zero unless every variant delivered every event). See README.md.
 *
 * Options: --quick  --variants=naive,ceiling,…  --workloads=fanout,fanout10k,slow,idle,redis
 *          --rounds=N  --idle-window=ms  --set=fanout10k.m=200,… (any workload size)
 *          --prof (servers run with --cpu-prof into results/prof/)
 *          --out=dir (default results/, or results/quick/ with --quick)
 *          --extra-variant=/abs/path.js (one more server variant, id `extra`: how the smoke test proves
 *          that a variant losing events fails the run)
 */
import { execSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { basename, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FULL, QUICK } from './lib/config.js';
import { fanout, idle, slow } from './lib/driver.js';
import { redisWorkload } from './lib/redis.js';
import { renderMarkdown, renderSvg, summarize } from './lib/report.js';
import { VARIANTS } from './variants/index.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const argv = process.argv.slice(2);

// 10,000 connections need 10,000 descriptors in the server and as many in the load generator: raise
// the soft limit in a shell (children inherit it) before anything starts. Node also raises its own
// soft limit to the hard one, so this only matters where the hard limit can be raised.
if (process.env.BENCH_FD_RAISED !== '1') {
  const result = spawnSync(
    'sh',
    [
      '-c',
      'ulimit -n 65535 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$0" "$@"',
      process.execPath,
      ...process.execArgv,
      fileURLToPath(import.meta.url),
      ...argv,
    ],
    { stdio: 'inherit', env: { ...process.env, BENCH_FD_RAISED: '1' } },
  );
  process.exit(result.status ?? 1);
}

const flag = (name) => argv.includes(`--${name}`);
const option = (name) => argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);

const quick = flag('quick');
const config = structuredClone(quick ? QUICK : FULL);
const out = option('out') ?? `${here}results${quick ? '/quick' : ''}`;
if (flag('prof')) config.profDir = `${out}/prof`;
const only = option('variants')?.split(',');
const extra = option('extra-variant');
const known = extra
  ? [...VARIANTS, { id: 'extra', file: resolve(extra), label: `extra (${basename(extra)})` }]
  : VARIANTS;
const variants = only ? known.filter((v) => only.includes(v.id)) : known;
const workloadNames = option('workloads')?.split(',') ?? [...Object.keys(config.workloads), 'redis'];
if (option('rounds'))
  for (const w of Object.values(config.workloads)) if ('rounds' in w) w.rounds = Number(option('rounds'));
if (option('idle-window') && config.workloads.idle) config.workloads.idle.windowMs = Number(option('idle-window'));
// --set=fanout10k.m=200,slow.n=500: any size of any workload.
for (const pair of option('set')?.split(',') ?? []) {
  const [path, value] = pair.split('=');
  const [name, key] = path.split('.');
  if (config.workloads[name] === undefined || !(key in config.workloads[name])) {
    console.error(`--set: no ${path}`);
    process.exit(2);
  }
  config.workloads[name][key] = Number(value);
}

const fdLimit = Number(execSync('ulimit -n', { shell: '/bin/sh' }).toString().trim()) || 1024;
const notes = [];
for (const [name, w] of Object.entries(config.workloads)) {
  // Each process needs one descriptor per connection plus a few hundred of its own.
  if (w.n !== undefined && w.n + 500 > fdLimit) {
    const n = fdLimit - 500;
    notes.push(`${name}: ${w.n} connections exceed the descriptor limit (${fdLimit}); ran ${n}`);
    w.n = n;
  }
}

const log = (line) => console.log(line);
const started = Date.now();
const machine = {
  cpu: cpuModel(),
  cores: os.cpus().length,
  memoryGiB: Math.round(os.totalmem() / 2 ** 30),
  node: process.version,
  platform: `${os.type()} ${os.release()}`,
  fdLimit,
  // Other work on the machine makes timings noisy: the 1-minute load average says how much there was.
  loadavg: { start: os.loadavg()[0].toFixed(2), end: '' },
};
log(`ssekit benchmark (${quick ? 'quick' : 'full'}) — ${machine.cpu}, ${machine.cores} cores, Node ${machine.node}`);
for (const note of notes) log(`note: ${note}`);

const results = {};
const runners = { fanout, fanout10k: fanout, slow, idle };
const names = workloadNames.filter((name) => name !== 'redis' && config.workloads[name] !== undefined);
const roundsOf = (w) => w.rounds ?? 1;

/** One round of one workload for one variant; a failure is recorded, never thrown. */
async function runRound(name, variant, index, log, state) {
  const w = config.workloads[name];
  try {
    const { result, errors } = await runners[name].round(variant, config, w, log, index);
    state.rounds.push(result);
    state.errors.push(...errors);
  } catch (error) {
    state.errors.push(String(error?.message ?? error));
    log(`  round ${index + 1}: FAILED ${error?.message ?? error}`);
  }
}

const states = {};
for (const variant of variants) {
  results[variant.id] = {};
  states[variant.id] = {};
  for (const name of names) states[variant.id][name] = { rounds: [], errors: [] };
}
if (quick) {
  // The smoke run asserts delivery only, so variants may share the machine: three at a time, each
  // printing its log when it is done.
  const queue = [...variants];
  const worker = async () => {
    for (let variant = queue.shift(); variant !== undefined; variant = queue.shift()) {
      const lines = [];
      const t0 = Date.now();
      for (const name of names) {
        lines.push(`${name} · ${variant.label}`);
        const push = (l) => lines.push(l);
        for (let i = 0; i < roundsOf(config.workloads[name]); i++)
          await runRound(name, variant, i, push, states[variant.id][name]);
      }
      log(`${lines.join('\n')}\n  (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
    }
  };
  await Promise.all([worker(), worker(), worker()]);
} else {
  // Rounds are interleaved across variants: a change in machine load hits every variant alike.
  for (const name of names) {
    for (let i = 0; i < roundsOf(config.workloads[name]); i++) {
      for (const variant of variants) {
        const t0 = Date.now();
        log(`${name} · ${variant.label}`);
        await runRound(name, variant, i, log, states[variant.id][name]);
        log(`  (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
      }
    }
  }
}
for (const variant of variants) {
  for (const name of names) {
    const state = states[variant.id][name];
    results[variant.id][name] = runners[name].aggregate(config.workloads[name], state.rounds, state.errors);
  }
}
let redis;
if (workloadNames.includes('redis')) {
  log('redis · cross-instance hub');
  redis = await redisWorkload({ quick, log, profDir: config.profDir });
}

machine.loadavg.end = os.loadavg()[0].toFixed(2);
const report = {
  date: new Date().toISOString(),
  mode: quick ? 'quick' : 'full',
  durationS: Math.round((Date.now() - started) / 1000),
  machine,
  config: { keepalive: config.keepalive, workloads: config.workloads },
  notes,
  variants: variants.map(({ id, label, ssekit }) => ({ id, label, ssekit: ssekit === true })),
  results,
  redis,
};
report.summary = summarize(report);
const markdown = renderMarkdown(report);
mkdirSync(out, { recursive: true });
writeFileSync(`${out}/latest.json`, `${JSON.stringify(report, null, 2)}\n`);
writeFileSync(`${out}/latest.md`, markdown);
writeFileSync(`${out}/latest.svg`, renderSvg(report));

// A full run into the default place also refreshes the table in README.md.
if (!quick && option('out') === undefined && variants.length === VARIANTS.length) updateReadme(markdown);

log('');
log(markdown);
log(`written: ${out}/latest.{md,svg,json} in ${report.durationS} s`);

// Delivery is what the smoke run asserts; timings never fail a run.
const failures = report.summary.delivery.filter((d) => !d.ok);
for (const f of failures) log(`DELIVERY FAILED: ${f.variant} ${f.workload}: ${f.errors.join('; ')}`);
// As in the Redis tests: outside CI a missing Redis is a visible skip, under CI=true a failure.
const redisMissing = redis?.skipped !== undefined && process.env.CI === 'true';
if (redisMissing) log(`REDIS PART NOT RUN under CI=true: ${redis.skipped}`);
process.exit(failures.length > 0 || redisMissing ? 1 : 0);

function updateReadme(markdown) {
  const file = `${here}README.md`;
  const text = readFileSync(file, 'utf8');
  const start = '<!-- latest:start -->';
  const end = '<!-- latest:end -->';
  const a = text.indexOf(start);
  const b = text.indexOf(end);
  if (a === -1 || b < a) return;
  // The run's own title becomes a sub-heading of the README's section.
  const body = markdown.replace(/^# .*\n/, '').replace(/^### /gm, '#### ');
  writeFileSync(file, `${text.slice(0, a + start.length)}\n${body.trim()}\n${text.slice(b)}`);
}

function cpuModel() {
  try {
    const info = readFileSync('/proc/cpuinfo', 'utf8');
    const model = /^model name\s*:\s*(.+)$/m.exec(info)?.[1];
    if (model) return model.trim();
  } catch {}
  return os.cpus()[0]?.model ?? 'unknown CPU';
}
