/**
 * The benchmark's smoke run (`node bench/run.js --quick`) over real processes and sockets: every
 * variant must deliver every event in every workload, and a variant that loses events must fail the
 * run. It runs against the built packages (`pnpm build`, which the root `test` script runs first).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { VARIANTS } from '../variants/index.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const runJs = fileURLToPath(new URL('../run.js', import.meta.url));
const out = mkdtempSync(join(tmpdir(), 'ssekit-bench-'));

afterAll(() => rmSync(out, { recursive: true, force: true }));

interface Run {
  code: number | null;
  stdout: string;
}

function bench(args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [runJs, '--quick', ...args], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
    });
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout: `${stdout}\n${stderr}` }));
  });
}

describe('bench --quick', () => {
  it('needs the built packages', () => {
    for (const pkg of ['core', 'express', 'fastify']) {
      expect(existsSync(join(root, 'packages', pkg, 'dist', 'index.js')), `run pnpm build (packages/${pkg})`).toBe(
        true,
      );
    }
  });

  it('runs every variant in every workload and each delivers every event', async () => {
    const dir = join(out, 'all');
    const run = await bench([`--out=${dir}`]);
    expect(run.code, run.stdout).toBe(0);
    const report = JSON.parse(readFileSync(join(dir, 'latest.json'), 'utf8'));
    const workloads = ['fanout', 'slow', 'idle'];
    for (const variant of VARIANTS) {
      for (const workload of workloads) {
        const result = report.results[variant.id]?.[workload];
        expect(result?.ok, `${variant.id} ${workload}: ${JSON.stringify(result?.errors)}`).toBe(true);
        // The per-variant delivery line printed for the workload.
        expect(run.stdout).toContain(`${workload} · ${variant.label}`);
      }
      const fan = report.results[variant.id].fanout.rounds[0];
      expect(fan.min).toBe(report.config.workloads.fanout.m);
      expect(fan.max).toBe(report.config.workloads.fanout.m);
      expect(fan.events).toBe(report.config.workloads.fanout.n * report.config.workloads.fanout.m);
    }
    expect(run.stdout).toMatch(/delivered all \d+ events/);
    expect(run.stdout).toContain('Delivery: every variant delivered every event');
    expect(readFileSync(join(dir, 'latest.md'), 'utf8')).toContain('| hand-coalesced node:http (ceiling) |');
    expect(readFileSync(join(dir, 'latest.svg'), 'utf8')).toMatch(/^<svg [^>]*>[\s\S]*<\/svg>\n$/);
  }, 150_000);

  it('fails the run when a variant loses events, however many heartbeats and id-only frames it sends', async () => {
    // Like the ceiling, but every 10th event is replaced by a heartbeat and an id-only frame.
    const lossy = join(out, 'lossy.mjs');
    writeFileSync(
      lossy,
      `import http from 'node:http';
export async function start() {
  const clients = new Set();
  let seq = 0;
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/event-stream' });
    res.flushHeaders();
    clients.add(res);
    res.on('close', () => clients.delete(res));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: server.address().port,
    publish(data) {
      seq++;
      const frame = seq % 10 === 0 ? ':\\n\\nid: ' + seq + '\\n\\n' : 'id: ' + seq + '\\ndata: ' + data + '\\n\\n';
      for (const res of clients) res.write(frame);
    },
    count: () => clients.size,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(resolve); }),
  };
}
`,
    );
    const run = await bench([
      `--out=${join(out, 'lossy')}`,
      `--extra-variant=${lossy}`,
      '--variants=extra',
      '--workloads=fanout',
    ]);
    expect(run.code, run.stdout).toBe(1);
    expect(run.stdout).toContain('DELIVERY FAILED: extra fanout');
    expect(run.stdout).toContain('delivered NOT all');
  }, 60_000);
});
