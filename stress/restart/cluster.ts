/**
 * The multi-instance example as the rolling-restart test runs it: instances of
 * `examples/multi-instance/server.js` (each a hub on the Redis backplane, with the example's SIGTERM
 * handler) and nginx in front with the example's `nginx.conf`. This is start.mjs taken apart, because
 * the test needs what start.mjs does not offer: restarting a stopped instance on its old port (the
 * port nginx's upstream names), and `worker_connections` sized to the client count — every SSE
 * client costs nginx two connections (client side and upstream).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const EXAMPLE = fileURLToPath(new URL('../../examples/multi-instance/', import.meta.url));

/** One running `server.js`. */
export interface Instance {
  readonly name: string;
  readonly port: number;
  readonly url: string;
  readonly pid: number;
  /** Everything it wrote to stdout and stderr (shown when a test fails). */
  readonly output: () => string;
  /** Resolves once the process has exited, with its exit code (or signal). */
  readonly exited: Promise<number | string | null>;
  /** Sends `signal` (default SIGTERM: the example's graceful shutdown), waits for exit; SIGKILL after `graceMs`. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<number | string | null>;
}

/** Starts `node server.js` as instance `name` on `port` (0: any) and resolves once it listens. */
export function startInstance(name: string, port: number, env: Record<string, string>): Promise<Instance> {
  const child: ChildProcess = spawn(process.execPath, [join(EXAMPLE, 'server.js')], {
    env: { ...process.env, ...env, INSTANCE: name, PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const exited = new Promise<number | string | null>((resolve) =>
    child.once('exit', (code, signal) => resolve(signal ?? code)),
  );
  const stop = async (signal: NodeJS.Signals = 'SIGTERM', graceMs = 5000): Promise<number | string | null> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      const result = await exited;
      clearTimeout(timer);
      return result;
    }
    return exited;
  };
  return new Promise((resolve, reject) => {
    child.stderr?.on('data', (chunk) => {
      output += chunk;
    });
    child.stdout?.on('data', (chunk) => {
      output += chunk;
      const match = /listening on http:\/\/localhost:(\d+)/.exec(output);
      if (match) {
        const actual = Number(match[1]);
        resolve({
          name,
          port: actual,
          url: `http://127.0.0.1:${actual}`,
          pid: child.pid as number,
          output: () => output,
          exited,
          stop,
        });
      }
    });
    child.once('exit', (code) => reject(new Error(`instance ${name} exited (${code}) before listening:\n${output}`)));
  });
}

/** nginx in front of `ports`, configured by the example's nginx.conf. */
export interface Nginx {
  readonly url: string;
  /** nginx's error log (warnings included: failed upstream connections show here). */
  readonly log: () => string;
  stop(): Promise<void>;
}

/**
 * Runs nginx with the example's nginx.conf (round-robin upstream, `proxy_buffering off`, HTTP/1.1
 * upstream, `proxy_next_upstream error timeout`) on `port`; only `worker_connections` is raised.
 */
export async function startNginx(
  port: number,
  upstreamPorts: number[],
  options: { workerConnections?: number; binary?: string } = {},
): Promise<Nginx> {
  const prefix = mkdtempSync(join(tmpdir(), 'ssekit-restart-nginx-'));
  // Its workers drop root privileges and must still read the prefix.
  chmodSync(prefix, 0o755);
  const template = readFileSync(join(EXAMPLE, 'nginx.conf'), 'utf8');
  const limit = /worker_connections \d+;/;
  if (!limit.test(template)) throw new Error('the example nginx.conf has no worker_connections line any more');
  const config = template
    .replace(limit, `worker_connections ${options.workerConnections ?? 8192};`)
    .replaceAll('{{PREFIX}}', prefix)
    .replaceAll('{{UPSTREAMS}}', upstreamPorts.map((p) => `    server 127.0.0.1:${p};`).join('\n'))
    .replaceAll('{{HOST}}', '127.0.0.1')
    .replaceAll('{{PORT}}', String(port));
  const configFile = join(prefix, 'nginx.conf');
  writeFileSync(configFile, config);
  const nginx = spawn(
    options.binary ?? '/usr/sbin/nginx',
    ['-p', prefix, '-c', configFile, '-e', 'stderr', '-g', 'daemon off;'],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  let log = '';
  nginx.stderr?.on('data', (chunk) => {
    log += chunk;
  });
  nginx.once('error', (error) => {
    log += String(error);
  });
  const exited = new Promise((resolve) => nginx.once('exit', resolve));
  const stop = async (): Promise<void> => {
    if (nginx.exitCode === null && nginx.signalCode === null) {
      nginx.kill('SIGQUIT');
      const timer = setTimeout(() => nginx.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(prefix, { recursive: true, force: true });
  };
  try {
    await waitForPort(port, () => nginx.exitCode !== null || nginx.signalCode !== null);
  } catch (error) {
    await stop();
    throw new Error(`nginx did not start: ${(error as Error).message}\n${log}`);
  }
  return { url: `http://127.0.0.1:${port}`, log: () => log, stop };
}

/** Resolves once something accepts connections on 127.0.0.1:port (polling; gives up after 10 s). */
async function waitForPort(port: number, failed: () => boolean): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (failed()) throw new Error('the process exited');
    const open = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on 127.0.0.1:${port} after 10 s`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
