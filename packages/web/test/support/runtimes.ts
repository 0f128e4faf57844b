/**
 * Runs one fetch-handler module on a real runtime in a child process: Node (through Hono and
 * `@hono/node-server`), Bun (`Bun.serve`), Deno (`Deno.serve`) or workerd (the Cloudflare Workers
 * runtime). The module is a TypeScript file whose default export is `{ fetch(request) }`; esbuild bundles
 * it (with `@ssekit/*` resolved to the sources) so that every runtime runs the same code.
 *
 * ```ts
 * const server = await startRuntime('bun', fixture);
 * try { await fetch(`${server.url}/stats`); } finally { await server.stop(); }
 * ```
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type Plugin } from 'esbuild';
import { freePort } from '../../../core/test/support/clients.js';

export type RuntimeName = 'node-hono' | 'bun' | 'deno' | 'workerd';

export const RUNTIMES: readonly RuntimeName[] = ['node-hono', 'bun', 'deno', 'workerd'];

/** A runtime serving the module on 127.0.0.1. */
export interface RunningRuntime {
  runtime: RuntimeName;
  /** `http://127.0.0.1:<port>` (no trailing slash). */
  url: string;
  port: number;
  /** Kills the runtime (its whole process group) and waits for it to exit. Safe to call twice. */
  stop(): Promise<void>;
  /** Everything the runtime printed so far (stdout and stderr, interleaved; the last 256 KiB). */
  output(): string;
}

/** The workerd compatibility settings the module runs with. */
export const WORKERD_COMPATIBILITY = {
  date: '2026-11-01',
  // Without it `request.signal` never aborts on workerd (the flag has no default-on date); a client
  // leaving is then only seen as the body's cancel(), on the next write.
  flags: ['enable_request_signal'],
};

const here = dirname(fileURLToPath(import.meta.url));
const webRoot = join(here, '..', '..');
const repoRoot = join(webRoot, '..', '..');
const requireFromWeb = createRequire(join(webRoot, 'package.json'));

function packageFile(pkg: string, file: string): string | undefined {
  try {
    return join(dirname(requireFromWeb.resolve(`${pkg}/package.json`)), file);
  } catch {
    return undefined;
  }
}

const BINARIES: Record<Exclude<RuntimeName, 'node-hono'>, string | undefined> = {
  bun: packageFile('@oven/bun-linux-x64', 'bin/bun'),
  deno: packageFile('@deno/linux-x64-glibc', 'deno'),
  workerd: packageFile('@cloudflare/workerd-linux-64', 'bin/workerd'),
};

/** Why `runtime` cannot run here (its binary package is not installed), or undefined when it can. */
export function unavailable(runtime: RuntimeName): string | undefined {
  if (runtime === 'node-hono') return undefined;
  const binary = BINARIES[runtime];
  if (binary === undefined || !existsSync(binary)) return `${runtime} binary not installed`;
  return undefined;
}

/** `@ssekit/*` resolve to the sources, as in vitest.config.ts. */
const ssekitSources: Plugin = {
  name: 'ssekit-sources',
  setup(b) {
    const map: Record<string, string> = {
      '@ssekit/core': join(repoRoot, 'packages/core/src/index.ts'),
      '@ssekit/core/testing': join(repoRoot, 'packages/core/src/testing.ts'),
      '@ssekit/web': join(repoRoot, 'packages/web/src/index.ts'),
    };
    b.onResolve({ filter: /^@ssekit\// }, (args) => {
      const path = map[args.path];
      return path === undefined ? undefined : { path };
    });
  },
};

// The bootstrap of each runtime: imports the module (`__ENTRY__`) and serves it on $PORT.
const BOOT: Record<Exclude<RuntimeName, 'workerd'>, string> = {
  'node-hono': `
import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import mod from '__ENTRY__';
const app = new Hono();
app.all('*', (c) => mod.fetch(c.req.raw));
const port = Number(process.env.PORT);
serve({ fetch: app.fetch, port, hostname: '127.0.0.1' }, () => console.log('listening on ' + port));
`,
  bun: `
import mod from '__ENTRY__';
const port = Number(process.env.PORT);
Bun.serve({ port, hostname: '127.0.0.1', fetch: (request) => mod.fetch(request) });
console.log('listening on ' + port);
`,
  deno: `
import mod from '__ENTRY__';
const port = Number(Deno.env.get('PORT'));
Deno.serve({ port, hostname: '127.0.0.1', onListen: () => console.log('listening on ' + port) }, (request) => mod.fetch(request));
`,
};

// workerd with a Durable Object: every request is forwarded to one object that runs the module, so all
// streams and publishes share the object's context (a plain worker's requests do not share timers).
const WORKERD_DURABLE_OBJECT_BOOT = `
import mod from '__ENTRY__';
export class App {
  fetch(request) {
    return mod.fetch(request);
  }
}
export default {
  fetch(request, env) {
    return env.APP.get(env.APP.idFromName('app')).fetch(request);
  },
};
`;

/** Options of {@link startRuntime}. */
export interface StartOptions {
  /** workerd only: run the module inside one Durable Object that every request is forwarded to. */
  durableObject?: boolean;
  /** Give up (and kill the runtime) when it does not answer within this many ms. Default 10000. */
  timeout?: number;
}

let workDir: Promise<string> | undefined;
function tempDir(): Promise<string> {
  workDir ??= mkdtemp(join(tmpdir(), 'ssekit-runtimes-'));
  return workDir;
}

const bundles = new Map<string, Promise<string>>();

/** Bundles `entry` for `runtime` once per test process; resolves to the bundle's path. */
function bundle(runtime: RuntimeName, entry: string, durableObject: boolean): Promise<string> {
  const key = `${runtime}\0${entry}\0${durableObject}`;
  let done = bundles.get(key);
  if (done === undefined) {
    done = makeBundle(runtime, entry, durableObject);
    bundles.set(key, done);
    done.catch(() => bundles.delete(key));
  }
  return done;
}

async function makeBundle(runtime: RuntimeName, entry: string, durableObject: boolean): Promise<string> {
  const dir = join(await tempDir(), `${runtime}-${basename(entry).replace(/\W/g, '_')}-${bundles.size}`);
  await mkdir(dir, { recursive: true });
  const outfile = join(dir, runtime === 'workerd' ? 'worker.js' : 'server.mjs');
  const common = {
    bundle: true,
    format: 'esm' as const,
    outfile,
    plugins: [ssekitSources],
    logLevel: 'silent' as const,
    target: 'es2022',
    sourcemap: 'inline' as const,
    absWorkingDir: webRoot,
  };
  if (runtime === 'workerd') {
    await build({
      ...common,
      ...(durableObject
        ? {
            stdin: {
              contents: WORKERD_DURABLE_OBJECT_BOOT.replace('__ENTRY__', entry.replace(/\\/g, '/')),
              resolveDir: webRoot,
              sourcefile: 'boot-workerd-durable-object.ts',
              loader: 'ts' as const,
            },
          }
        : { entryPoints: [entry] }),
      platform: 'neutral',
      mainFields: ['module', 'main'],
      conditions: ['workerd', 'worker', 'browser', 'import', 'default'],
      // Built-in modules load at compatibility dates that provide them; bundling can't do better.
      external: ['node:*'],
    });
    await writeFile(join(dir, 'config.capnp'), workerdConfig(basename(outfile), durableObject));
    return outfile;
  }
  await build({
    ...common,
    stdin: {
      contents: BOOT[runtime].replace('__ENTRY__', entry.replace(/\\/g, '/')),
      resolveDir: webRoot,
      sourcefile: `boot-${runtime}.ts`,
      loader: 'ts',
    },
    platform: runtime === 'node-hono' ? 'node' : 'neutral',
    mainFields: ['module', 'main'],
    conditions: runtime === 'node-hono' ? ['node', 'import', 'default'] : [runtime, 'import', 'default'],
    external: ['node:*'],
    // CommonJS dependencies bundled into ESM may call require() for built-ins.
    banner:
      runtime === 'node-hono'
        ? {
            js: "import { createRequire as __ssekitCreateRequire } from 'node:module'; const require = __ssekitCreateRequire(import.meta.url);",
          }
        : undefined,
  });
  return outfile;
}

function workerdConfig(moduleFile: string, durableObject: boolean): string {
  const flags = WORKERD_COMPATIBILITY.flags.map((f) => JSON.stringify(f)).join(', ');
  const objects = durableObject
    ? `
  durableObjectNamespaces = [ (className = "App", uniqueKey = "ssekit-runtimes-test-app") ],
  durableObjectStorage = (inMemory = void),
  bindings = [ (name = "APP", durableObjectNamespace = "App") ],`
    : '';
  return `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [ (name = "main", worker = .worker) ],
  sockets = [ (name = "http", address = "127.0.0.1:0", http = (), service = "main") ],
);
const worker :Workerd.Worker = (
  modules = [ (name = "worker", esModule = embed ${JSON.stringify(moduleFile)}) ],
  compatibilityDate = ${JSON.stringify(WORKERD_COMPATIBILITY.date)},
  compatibilityFlags = [${flags}],${objects}
);
`;
}

// Children still running when the test process exits are killed with it.
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of live) killGroup(child);
});

function killGroup(child: ChildProcess): void {
  if (child.pid === undefined) return;
  try {
    // workerd drains open responses on SIGTERM and would not exit while a stream is open; these are
    // throwaway test servers, so SIGKILL the whole group.
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    try {
      child.kill('SIGKILL');
    } catch {}
  }
}

function command(runtime: RuntimeName, file: string, port: number): { cmd: string; args: string[] } {
  switch (runtime) {
    case 'node-hono':
      return { cmd: process.execPath, args: ['--enable-source-maps', '--expose-gc', file] };
    case 'bun':
      return { cmd: BINARIES.bun as string, args: ['run', '--no-install', file] };
    case 'deno':
      return {
        cmd: BINARIES.deno as string,
        args: [
          'run',
          '--quiet',
          '--no-config',
          '--no-lock',
          '--no-prompt',
          `--allow-net=127.0.0.1:${port}`,
          '--allow-env',
          '--v8-flags=--expose-gc',
          file,
        ],
      };
    case 'workerd':
      return {
        cmd: BINARIES.workerd as string,
        args: ['serve', join(dirname(file), 'config.capnp'), '--socket-addr', `http=127.0.0.1:${port}`, '--verbose'],
      };
  }
}

const MAX_OUTPUT = 256 * 1024;

/**
 * Bundles `entry` (a module whose default export is `{ fetch(request) }`) for `runtime`, starts the runtime
 * on a free 127.0.0.1 port and resolves once it answers HTTP. Rejects (with the runtime's output) when it
 * exits or does not answer within `timeout` ms; the process is killed in that case too.
 */
export async function startRuntime(
  runtime: RuntimeName,
  entry: string,
  options: StartOptions = {},
): Promise<RunningRuntime> {
  const why = unavailable(runtime);
  if (why !== undefined) throw new Error(why);
  const durableObject = options.durableObject === true;
  if (durableObject && runtime !== 'workerd') throw new Error('durableObject: workerd only');
  const timeout = options.timeout ?? 10_000;
  const file = await bundle(runtime, entry, durableObject);
  let lastError: unknown;
  // A port found free can be taken before the runtime binds it; try another one then.
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    try {
      return await launch(runtime, file, port, timeout);
    } catch (error) {
      lastError = error;
      if (!(error instanceof Error && /address already in use|EADDRINUSE|AddrInUse/i.test(error.message))) throw error;
    }
  }
  throw lastError;
}

async function launch(runtime: RuntimeName, file: string, port: number, timeout: number): Promise<RunningRuntime> {
  const { cmd, args } = command(runtime, file, port);
  const child = spawn(cmd, args, {
    cwd: dirname(file),
    env: {
      ...process.env,
      PORT: String(port),
      NO_COLOR: '1',
      DENO_NO_UPDATE_CHECK: '1',
      DENO_NO_PROMPT: '1',
      BUN_RUNTIME_TRANSPILER_CACHE_PATH: '0',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true, // its own process group, so stop() kills what it spawned too
  });
  live.add(child);
  let out = '';
  const append = (chunk: Buffer): void => {
    out += chunk.toString();
    if (out.length > MAX_OUTPUT) out = out.slice(-MAX_OUTPUT);
  };
  child.stdout?.on('data', append);
  child.stderr?.on('data', append);
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    child.once('exit', () => {
      live.delete(child);
      resolve();
    });
    child.once('error', (error) => {
      out += `\n[spawn error] ${String(error)}`;
      live.delete(child);
      resolve();
    });
  });
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (!stopped) {
      stopped = true;
      killGroup(child);
    }
    await exited;
  };
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + timeout;
  let gone = false;
  void exited.then(() => {
    gone = true;
  });
  for (;;) {
    if (gone)
      throw new Error(
        `${runtime} exited (code ${child.exitCode}, signal ${child.signalCode}) before answering:\n${out}`,
      );
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`${runtime} did not answer on ${url} within ${timeout} ms:\n${out}`);
    }
    if (await answers(url)) break;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return { runtime, url, port, stop, output: () => out };
}

/** True once something answers HTTP on `url` (any status). */
async function answers(url: string): Promise<boolean> {
  try {
    const res = await fetch(`${url}/__ready`, { signal: AbortSignal.timeout(500) });
    await res.body?.cancel();
    return true;
  } catch {
    return false;
  }
}

/** Removes the bundles (call once, after every runtime stopped). */
export async function removeBundles(): Promise<void> {
  if (workDir === undefined) return;
  const dir = await workDir;
  workDir = undefined;
  bundles.clear();
  await rm(dir, { recursive: true, force: true });
}
