/**
 * Shared by the example tests: start an example server as a child process (and restart it on the
 * same port), and drive Debian's Chromium through playwright-core.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import { type Browser, chromium } from 'playwright-core';
import { describe } from 'vitest';

export const CHROMIUM = '/usr/bin/chromium';

/** `describe` when Chromium is there (always under CI=true, where a missing one must fail), else a visible skip. */
export const describeBrowser: typeof describe = (() => {
  if (existsSync(CHROMIUM) || process.env.CI === 'true') return describe;
  console.warn(`[ssekit] ${CHROMIUM} not found: browser tests skipped (apt-get install -y chromium)`);
  return describe.skip as typeof describe;
})();

/** Launches headless Chromium with the flags this machine needs (no sandbox as root, no network chatter). */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-dev-shm-usage',
    ],
  });
}

/** A running example server. */
export interface ExampleServer {
  port: number;
  url: string;
  process: ChildProcess;
  output: () => string;
  /** Sends `signal` and waits for the process to exit. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/**
 * Starts `node <script>` with `env` (PORT=0 unless given) and resolves once it printed
 * `listening on http://localhost:<port>`.
 */
export function startExample(
  script: string,
  env: Record<string, string> = {},
  timeout = 15_000,
): Promise<ExampleServer> {
  const child = spawn(process.execPath, [script], {
    env: { ...process.env, PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  return new Promise<ExampleServer>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${script} did not start in ${timeout} ms:\n${out}`));
    }, timeout);
    const onData = (chunk: Buffer): void => {
      out += chunk.toString();
      const match = /listening on http:\/\/localhost:(\d+)/.exec(out);
      if (match) {
        clearTimeout(timer);
        const port = Number(match[1]);
        resolve({
          port,
          url: `http://localhost:${port}`,
          process: child,
          output: () => out,
          stop(signal = 'SIGTERM') {
            if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
            return new Promise<void>((done) => {
              child.once('exit', () => done());
              child.kill(signal);
            });
          },
        });
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${script} exited with ${code} before listening:\n${out}`));
    });
  });
}

/**
 * A TCP proxy standing for a client's network: `cut()` drops its connections and refuses new ones
 * until `restore()`, as a train entering a tunnel would.
 */
export async function flakyNetwork(targetPort: number) {
  const sockets = new Set<net.Socket>();
  let up = true;
  const server = net.createServer((client) => {
    if (!up) {
      client.destroy();
      return;
    }
    const upstream = net.connect(targetPort, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => {});
      s.on('close', () => {
        sockets.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    cut() {
      up = false;
      for (const s of sockets) s.destroy();
    },
    restore() {
      up = true;
    },
    close() {
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
