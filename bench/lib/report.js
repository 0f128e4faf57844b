/**
 * Turns the raw figures into ratios against the ceiling (same run), checks the benchmark's targets,
 * and renders the markdown table and the SVG chart.
 */
import { fmt } from './driver.js';

const CEILING = 'ceiling';
const NAIVE = 'naive';

const ratio = (value, reference) =>
  Number.isFinite(value) && Number.isFinite(reference) && reference > 0 ? value / reference : Number.NaN;

/** Figures per variant with their ratios, delivery per workload, and the benchmark's targets. */
export function summarize(report) {
  const { results } = report;
  const c = results[CEILING] ?? {};
  const naive = results[NAIVE] ?? {};
  const rows = report.variants.map(({ id, label, ssekit }) => {
    const r = results[id] ?? {};
    const row = { id, label, ssekit };
    for (const name of ['fanout', 'fanout10k']) {
      if (r[name] === undefined) continue;
      row[name] = {
        eventsPerSec: r[name].eventsPerSec,
        eventsPerSecX: ratio(r[name].eventsPerSec, c[name]?.eventsPerSec),
        cpuPerEventUs: r[name].cpuPerEventUs,
        cpuPerEventX: ratio(r[name].cpuPerEventUs, c[name]?.cpuPerEventUs),
      };
    }
    if (r.idle?.idle) {
      row.idle = {
        rssPerConnKiB: r.idle.idle.rssPerConn / 1024,
        rssX: ratio(r.idle.idle.rssPerConn, c.idle?.idle?.rssPerConn),
        rssXNaive: ratio(r.idle.idle.rssPerConn, naive.idle?.idle?.rssPerConn),
        cpuPct: r.idle.idle.cpuPct,
        cpuX: ratio(r.idle.idle.cpuPct, c.idle?.idle?.cpuPct),
      };
      row.latency = {
        p50Ms: r.idle.latency.p50 / 1000,
        p50X: ratio(r.idle.latency.p50, c.idle?.latency?.p50),
        p99Ms: r.idle.latency.p99 / 1000,
        p99X: ratio(r.idle.latency.p99, c.idle?.latency?.p99),
      };
    }
    if (r.slow !== undefined) {
      row.slow = {
        ratio: r.slow.ratio,
        x: ratio(r.slow.ratio, c.slow?.ratio),
        rssGrowthMiB: r.slow.rssGrowth / 2 ** 20,
      };
    }
    return row;
  });

  const delivery = [];
  for (const { id } of report.variants) {
    for (const [workload, r] of Object.entries(results[id] ?? {})) {
      delivery.push({ variant: id, workload, ok: r.ok === true, errors: r.errors ?? [] });
    }
  }
  if (report.redis && !report.redis.skipped) {
    delivery.push({ variant: 'ssekit-redis', workload: 'redis', ok: report.redis.ok, errors: report.redis.errors });
  }

  const targets = [];
  for (const row of rows.filter((r) => r.ssekit)) {
    const check = (name, value, limit, pass, shown) =>
      targets.push({ variant: row.id, name, value, limit, shown, pass: Number.isFinite(value) ? pass : null });
    if (row.fanout) {
      const f = row.fanout;
      check(
        'CPU per delivered event ≤ 1.2× ceiling',
        f.cpuPerEventX,
        1.2,
        f.cpuPerEventX <= 1.2,
        `${fmt(f.cpuPerEventX, 2)}×`,
      );
      check(
        'delivered events/s ≥ 0.9× ceiling',
        f.eventsPerSecX,
        0.9,
        f.eventsPerSecX >= 0.9,
        `${fmt(f.eventsPerSecX, 2)}×`,
      );
    }
    if (row.idle) {
      check(
        'idle RSS/conn ≤ 1.1× naive',
        row.idle.rssXNaive,
        1.1,
        row.idle.rssXNaive <= 1.1,
        `${fmt(row.idle.rssXNaive, 2)}×`,
      );
      check('idle CPU ≤ 1.5 % of a core', row.idle.cpuPct, 1.5, row.idle.cpuPct <= 1.5, `${fmt(row.idle.cpuPct, 2)} %`);
      check(
        'p99 latency ≤ 1.1× ceiling',
        row.latency.p99X,
        1.1,
        row.latency.p99X <= 1.1,
        `${fmt(row.latency.p99X, 2)}×`,
      );
    }
    if (row.slow) {
      check(
        'others’ events/s with 1 % slow ≥ 0.9× without',
        row.slow.ratio,
        0.9,
        row.slow.ratio >= 0.9,
        `${fmt(row.slow.ratio, 2)}×`,
      );
    }
  }
  return { rows, delivery, targets };
}

const cell = (value, x, digits = 1, unit = '') =>
  Number.isFinite(value) ? `${fmt(value, digits)}${unit} (${fmt(x, 2)}×)` : '–';
const kilo = (v) => v / 1000;

export function renderMarkdown(report) {
  const { summary: s, machine, config } = report;
  const w = config.workloads;
  const lines = [];
  lines.push(`# ssekit benchmark — ${report.mode} run`);
  lines.push('');
  lines.push(
    `${report.date.slice(0, 10)} · ${machine.cpu} · ${machine.cores} cores · ${machine.memoryGiB} GiB · Node ${machine.node} · ` +
      `${machine.platform} · ${report.durationS} s` +
      (machine.loadavg
        ? ` · load average ${machine.loadavg.start} at the start, ${machine.loadavg.end} at the end`
        : '') +
      '. Ratios (×) are to the hand-coalesced ceiling in the same run; medians of the rounds.',
  );
  for (const note of report.notes) lines.push(`\n> ${note}`);
  lines.push('');
  const ran = (name) => w[name] !== undefined && s.rows.some((row) => row[name] !== undefined);
  const fanouts = ['fanout', 'fanout10k'].filter(ran);
  if (fanouts.length > 0) {
    const head = ['variant'];
    const sep = ['---'];
    for (const name of fanouts) {
      const f = w[name];
      head.push(`${f.n.toLocaleString('en-US')}×${f.m}×${f.size} B: events/s`, 'CPU µs/event');
      sep.push('--:', '--:');
    }
    lines.push('### (a) Fan-out burst');
    lines.push('');
    lines.push(`| ${head.join(' | ')} |`, `| ${sep.join(' | ')} |`);
    for (const row of s.rows) {
      const cells = [row.label];
      for (const name of fanouts) {
        const f = row[name];
        cells.push(
          f ? cell(kilo(f.eventsPerSec), f.eventsPerSecX, 0, 'k') : '–',
          f ? cell(f.cpuPerEventUs, f.cpuPerEventX, 2) : '–',
        );
      }
      lines.push(`| ${cells.join(' | ')} |`);
    }
    lines.push('');
  }
  const idleRan = ran('idle') || s.rows.some((row) => row.latency !== undefined);
  const slowRan = ran('slow');
  if (idleRan || slowRan) {
    const head = ['variant'];
    const sep = ['---'];
    if (idleRan) {
      head.push('idle RSS KiB/conn', '× naive', 'idle CPU % of a core', 'latency p50 ms', 'latency p99 ms');
      sep.push('--:', '--:', '--:', '--:', '--:');
    }
    if (slowRan) {
      head.push('1 % slow: others’ events/s vs none', 'RSS growth MiB');
      sep.push('--:', '--:');
    }
    const titles = [];
    if (idleRan) {
      titles.push(
        `(b) idle ${w.idle.n.toLocaleString('en-US')} connections (keepalive ${config.keepalive / 1000} s, ` +
          `${w.idle.windowMs / 1000} s window), (d) latency at ${w.idle.rate} events/s to them`,
      );
    }
    if (slowRan) titles.push(`(c) 1 % slow consumers (${w.slow.n} clients × ${w.slow.m} events × ${w.slow.size} B)`);
    lines.push(`### ${titles.join('; ')}`);
    lines.push('');
    lines.push(`| ${head.join(' | ')} |`, `| ${sep.join(' | ')} |`);
    for (const row of s.rows) {
      const cells = [row.label];
      if (idleRan) {
        if (row.idle) {
          cells.push(
            cell(row.idle.rssPerConnKiB, row.idle.rssX, 2),
            Number.isFinite(row.idle.rssXNaive) ? `${fmt(row.idle.rssXNaive, 2)}×` : '–',
            cell(row.idle.cpuPct, row.idle.cpuX, 2),
            cell(row.latency.p50Ms, row.latency.p50X, 1),
            cell(row.latency.p99Ms, row.latency.p99X, 1),
          );
        } else cells.push('–', '–', '–', '–', '–');
      }
      if (slowRan) {
        cells.push(row.slow ? cell(row.slow.ratio, row.slow.x, 2, '×').replace('×)', '× ceiling’s)') : '–');
        cells.push(row.slow ? fmt(row.slow.rssGrowthMiB, 1) : '–');
      }
      lines.push(`| ${cells.join(' | ')} |`);
    }
    lines.push('');
  }
  if (report.redis) {
    lines.push(...renderRedis(report.redis), '');
  }
  if (s.targets.length > 0) {
    lines.push('### Targets (ssekit variants)');
    lines.push('');
    lines.push('| variant | target | measured | met |', '| --- | --- | --: | :-: |');
    for (const t of s.targets) {
      lines.push(`| ${t.variant} | ${t.name} | ${t.shown} | ${t.pass === null ? '–' : t.pass ? 'yes' : '**no**'} |`);
    }
    lines.push('');
  }
  const failed = s.delivery.filter((d) => !d.ok);
  lines.push(
    failed.length === 0
      ? `Delivery: every variant delivered every event in every workload (${s.delivery.length} check${s.delivery.length === 1 ? '' : 's'}).`
      : `Delivery FAILED: ${failed.map((f) => `${f.variant}/${f.workload} (${f.errors.join('; ')})`).join(', ')}`,
  );
  lines.push('');
  return lines.join('\n');
}

function renderRedis(redis) {
  if (redis.skipped) return ['### Redis backplane', '', `Skipped: ${redis.skipped}`];
  const lines = ['### Redis backplane: cross-instance vs in-memory hub', ''];
  lines.push('| hub | publish→receive p50 ms | p99 ms | events/s (burst) |', '| --- | --: | --: | --: |');
  for (const row of redis.rows) {
    lines.push(
      `| ${row.label} | ${fmt(row.p50 / 1000, 2)} | ${fmt(row.p99 / 1000, 2)} | ${fmt(kilo(row.eventsPerSec), 0)}k${row.x ? ` (${fmt(row.x, 2)}×)` : ''} |`,
    );
  }
  for (const note of redis.notes ?? []) lines.push('', note);
  lines.push('', '| target | measured | met |', '| --- | --: | :-: |');
  for (const t of redis.targets) {
    const shown = t.name.startsWith('throughput') ? `${fmt(t.value, 2)}×` : `${fmt(t.value, 2)} ms`;
    lines.push(`| ${t.name} | ${shown} | ${Number.isFinite(t.value) ? (t.pass ? 'yes' : '**no**') : '–'} |`);
  }
  return lines;
}

const COLORS = { ceiling: '#444', naive: '#bbb', peer: '#999', ssekit: '#1b8a7a' };

/** Four horizontal bar charts: CPU/event, events/s, p99 latency, idle RSS/conn. */
export function renderSvg(report) {
  const rows = report.summary.rows;
  const w = report.config.workloads;
  const f = w.fanout ? ` ${w.fanout.n.toLocaleString('en-US')}×${w.fanout.m}×${w.fanout.size} B` : '';
  const n = w.idle ? ` at ${w.idle.n.toLocaleString('en-US')} connections` : '';
  const panels = [
    {
      title: `CPU µs per delivered event (fan-out${f}), lower is better`,
      value: (r) => r.fanout?.cpuPerEventUs,
      x: (r) => r.fanout?.cpuPerEventX,
      digits: 2,
    },
    {
      title: `delivered events/s, thousands (fan-out${f}), higher is better`,
      value: (r) => r.fanout && r.fanout.eventsPerSec / 1000,
      x: (r) => r.fanout?.eventsPerSecX,
      digits: 0,
    },
    {
      title: `p99 publish→receive ms${n}, 10 events/s, lower is better`,
      value: (r) => r.latency?.p99Ms,
      x: (r) => r.latency?.p99X,
      digits: 1,
    },
    {
      title: `idle RSS KiB per connection${n}, lower is better`,
      value: (r) => r.idle?.rssPerConnKiB,
      x: (r) => r.idle?.rssX,
      digits: 2,
    },
    {
      title: `idle CPU % of one core${n}, keepalive on, lower is better`,
      value: (r) => r.idle?.cpuPct,
      x: (r) => r.idle?.cpuX,
      digits: 2,
    },
    {
      title: 'others’ events/s with 1 % slow ÷ without, higher is better',
      value: (r) => r.slow?.ratio,
      x: (r) => r.slow?.x,
      digits: 2,
    },
  ].filter((panel) => rows.some((r) => Number.isFinite(panel.value(r))));
  const labelW = 230;
  const barW = 260;
  const rowH = 20;
  const panelW = labelW + barW + 120;
  const panelH = 34 + rows.length * rowH + 10;
  const cols = 2;
  const width = panelW * cols;
  const height = 40 + Math.ceil(panels.length / cols) * panelH + 24;
  const esc = (t) => String(t).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  const out = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, sans-serif" font-size="12">`,
  );
  out.push(`<rect width="${width}" height="${height}" fill="#fff"/>`);
  const m = report.machine;
  out.push(
    `<text x="10" y="22" font-size="15" font-weight="bold">ssekit benchmark (${report.mode}) — ${esc(report.date.slice(0, 10))}</text>`,
  );
  out.push(
    `<text x="10" y="${height - 8}" fill="#555">${esc(`${m.cpu}, ${m.cores} cores, Node ${m.node}. Ratios to the hand-coalesced ceiling, same run.`)}</text>`,
  );
  panels.forEach((panel, i) => {
    const x0 = (i % cols) * panelW + 10;
    const y0 = 40 + Math.floor(i / cols) * panelH;
    out.push(`<text x="${x0}" y="${y0 + 14}" font-weight="bold">${esc(panel.title)}</text>`);
    const values = rows.map((r) => panel.value(r)).filter((v) => Number.isFinite(v));
    const max = values.length ? Math.max(...values) : 1;
    rows.forEach((r, j) => {
      const y = y0 + 26 + j * rowH;
      const v = panel.value(r);
      const color =
        r.id === 'ceiling' ? COLORS.ceiling : r.id === 'naive' ? COLORS.naive : r.ssekit ? COLORS.ssekit : COLORS.peer;
      out.push(`<text x="${x0}" y="${y + 13}">${esc(r.label)}</text>`);
      if (!Number.isFinite(v)) {
        out.push(`<text x="${x0 + labelW}" y="${y + 13}" fill="#999">n/a</text>`);
        return;
      }
      const w = Math.max(1, (v / max) * barW);
      out.push(`<rect x="${x0 + labelW}" y="${y + 2}" width="${w.toFixed(1)}" height="${rowH - 6}" fill="${color}"/>`);
      const x = panel.x(r);
      out.push(
        `<text x="${x0 + labelW + w + 4}" y="${y + 13}">${esc(`${fmt(v, panel.digits)}${Number.isFinite(x) ? ` (${fmt(x, 2)}×)` : ''}`)}</text>`,
      );
    });
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
