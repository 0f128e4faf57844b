/**
 * Builds and starts the Next.js example as a user would (`next build`, then `next start`), for its
 * tests. The build is skipped when `.next/` was built from the same inputs (the app's sources and
 * config, and the built @ssekit packages it bundles), so running the tests again is quick.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../../../packages/core/test/support/clients.js';
import { ROOT } from '../../../scripts/ensure-built.js';

/** examples/next, with a trailing slash. */
export const APP_DIR = fileURLToPath(new URL('../', import.meta.url));
const NEXT = join(APP_DIR, 'node_modules/next/dist/bin/next');
const STAMP = join(APP_DIR, '.next/ssekit-inputs.sha256');

/** The environment of `next build` and `next start`. */
function nextEnv(): NodeJS.ProcessEnv {
  return {
    ...process.env,
    // Vitest sets NODE_ENV=test, which Next refuses for a production build.
    NODE_ENV: 'production',
    NEXT_TELEMETRY_DISABLED: '1',
    // Next installs missing TypeScript packages by itself, except in CI: never let a test do that.
    CI: '1',
  };
}

function files(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    return entry.isDirectory() ? files(path) : [path];
  });
}

/** A hash of everything the build reads that can change in this repo. */
function inputsHash(): string {
  const inputs = [
    ...files(join(APP_DIR, 'app')),
    ...files(join(APP_DIR, 'lib')),
    ...['next.config.mjs', 'tsconfig.json', 'package.json'].map((f) => join(APP_DIR, f)),
    ...files(join(ROOT, 'packages/core/dist')).filter((f) => f.endsWith('.js')),
    ...files(join(ROOT, 'packages/web/dist')).filter((f) => f.endsWith('.js')),
  ].sort();
  const hash = createHash('sha256');
  for (const file of inputs) {
    if (!existsSync(file)) continue;
    hash.update(relative(ROOT, file)).update('\0').update(readFileSync(file)).update('\0');
  }
  return hash.digest('hex');
}

function run(args: string[], timeout: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [NEXT, ...args], {
      cwd: APP_DIR,
      env: nextEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      out += chunk.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeout);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`next ${args.join(' ')} failed (${signal ?? code}):\n${out}`));
    });
  });
}

/** Runs `next build` unless `.next/` is already the build of the current inputs. Resolves with the time it took (0 when skipped). */
export async function buildNext({ timeout = 300_000 } = {}): Promise<number> {
  const hash = inputsHash();
  if (existsSync(join(APP_DIR, '.next/BUILD_ID')) && existsSync(STAMP) && readFileSync(STAMP, 'utf8') === hash) {
    return 0;
  }
  const started = performance.now();
  await run(['build'], timeout);
  writeFileSync(STAMP, hash);
  const ms = performance.now() - started;
  console.log(`[next] next build took ${(ms / 1000).toFixed(1)} s`);
  return ms;
}

export interface NextServer {
  url: string;
  port: number;
  process: ChildProcess;
  output: () => string;
  /** Ends `next start` and whatever it spawned (its whole process group). */
  stop(): Promise<void>;
}

/** `next start -p <free port> -H 127.0.0.1`, resolved once it answers HTTP. */
export async function startNext({ timeout = 30_000 } = {}): Promise<NextServer> {
  const port = await freePort();
  const child = spawn(process.execPath, [NEXT, 'start', '-p', String(port), '-H', '127.0.0.1'], {
    cwd: APP_DIR,
    env: nextEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
    // Its own process group, so that stop() ends it with anything it started.
    detached: true,
  });
  let out = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    out += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    out += chunk.toString();
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const gone = () => child.exitCode !== null || child.signalCode !== null;
  const kill = (signal: NodeJS.Signals) => {
    try {
      process.kill(-(child.pid as number), signal);
    } catch {
      // Already gone.
    }
  };
  const server: NextServer = {
    url: `http://127.0.0.1:${port}`,
    port,
    process: child,
    output: () => out,
    async stop() {
      if (gone()) return;
      kill('SIGTERM');
      const timer = setTimeout(() => kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
      // Whatever it may have left in its group.
      kill('SIGKILL');
    },
  };
  const deadline = Date.now() + timeout;
  for (;;) {
    if (gone()) throw new Error(`next start exited before answering:\n${out}`);
    try {
      const res = await fetch(`${server.url}/api/stats`);
      if (res.ok) return server;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) {
      await server.stop();
      throw new Error(`next start did not answer in ${timeout} ms:\n${out}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
