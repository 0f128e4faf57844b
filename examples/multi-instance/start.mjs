// Starts the multi-instance example: two app instances (server.js) sharing one Redis stream, and
// nginx in front of them, round-robin.
//   node examples/multi-instance/start.mjs
// Environment: PORT (nginx, default 3000), INSTANCE_PORTS (default 3001,3002), REDIS_URL (default
// redis://127.0.0.1:6379), NGINX (default /usr/sbin/nginx), HOST (nginx listen address, 127.0.0.1).
// Kill one instance (its pid is printed) and watch the page reconnect to the other one.
//
// Also a module: `start(options)` does the same and returns handles (the end-to-end test uses it).

import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = (file) => fileURLToPath(new URL(file, import.meta.url));

/**
 * @typedef {object} Instance
 * @property {string} name
 * @property {number} port
 * @property {string} url
 * @property {import('node:child_process').ChildProcess} process
 * @property {(signal?: NodeJS.Signals) => Promise<void>} stop  sends the signal (default SIGTERM), waits for exit
 */

/**
 * @param {object} [options]
 * @param {number} [options.port]  nginx's port (default 3000)
 * @param {string} [options.host]  nginx's listen address (default 127.0.0.1)
 * @param {number[]} [options.instancePorts]  one per instance (default [3001, 3002]; 0 picks a free one)
 * @param {string} [options.redisUrl]
 * @param {string} [options.nginx]  the nginx binary
 * @param {Record<string, string>} [options.env]  more environment for the instances (STREAM, TICK_MS, RETRY…)
 * @param {boolean} [options.quiet]  keep nginx's and the instances' error output to themselves (tests)
 * @returns {Promise<{ url: string, instances: Instance[], stop: () => Promise<void> }>}
 */
export async function start(options = {}) {
  const port = options.port ?? 3000;
  const host = options.host ?? '127.0.0.1';
  const instancePorts = options.instancePorts ?? [3001, 3002];
  const nginxBinary = options.nginx ?? '/usr/sbin/nginx';
  const env = { ...process.env, ...options.env };
  const echo = options.quiet ? () => {} : (text) => process.stderr.write(text);
  if (options.redisUrl) env.REDIS_URL = options.redisUrl;

  const instances = [];
  const stopAll = async () => {
    await Promise.all(instances.map((instance) => instance.stop()));
  };
  try {
    for (const [index, instancePort] of instancePorts.entries()) {
      const name = String.fromCharCode(65 + index); // A, B, …
      instances.push(await startInstance(name, instancePort, env, echo));
    }
  } catch (error) {
    await stopAll();
    throw error;
  }

  // nginx wants a prefix for its pid and temp files: a fresh directory, readable by its workers
  // (which drop root privileges when started as root).
  const prefix = mkdtempSync(join(tmpdir(), 'ssekit-nginx-'));
  chmodSync(prefix, 0o755);
  const upstreams = instances.map((i) => `    server 127.0.0.1:${i.port};`).join('\n');
  const config = readFileSync(here('./nginx.conf'), 'utf8')
    .replaceAll('{{PREFIX}}', prefix)
    .replaceAll('{{UPSTREAMS}}', upstreams)
    .replaceAll('{{HOST}}', host)
    .replaceAll('{{PORT}}', String(port));
  const configFile = join(prefix, 'nginx.conf');
  writeFileSync(configFile, config);
  const nginx = spawn(nginxBinary, ['-p', prefix, '-c', configFile, '-e', 'stderr', '-g', 'daemon off;'], {
    stdio: ['ignore', 'inherit', 'pipe'],
  });
  let nginxErrors = '';
  nginx.stderr.on('data', (chunk) => {
    nginxErrors += chunk;
    echo(chunk);
  });
  const nginxExit = new Promise((resolve) => nginx.once('exit', resolve));
  nginx.once('error', (error) => {
    nginxErrors += String(error);
  });

  const stop = async () => {
    if (nginx.exitCode === null && nginx.signalCode === null) {
      nginx.kill('SIGQUIT');
      const timer = setTimeout(() => nginx.kill('SIGKILL'), 3000);
      await nginxExit;
      clearTimeout(timer);
    }
    await stopAll();
    rmSync(prefix, { recursive: true, force: true });
  };

  try {
    await waitForPort(host, port, () => nginx.exitCode !== null || nginx.signalCode !== null);
  } catch (error) {
    await stop();
    throw new Error(`nginx did not start: ${error.message}\n${nginxErrors}`);
  }
  return { url: `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${port}`, instances, stop };
}

/** Starts `node server.js` as instance `name` and resolves once it listens. */
function startInstance(name, port, env, echo) {
  const child = spawn(process.execPath, [here('./server.js')], {
    env: { ...env, INSTANCE: name, PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stderr.on('data', (chunk) => {
    output += chunk;
    echo(`[${name}] ${chunk}`);
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  /** @type {Instance['stop']} */
  const stop = async (signal = 'SIGTERM') => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(timer);
  };
  return new Promise((resolve, reject) => {
    child.stdout.on('data', (chunk) => {
      output += chunk;
      const match = /listening on http:\/\/localhost:(\d+)/.exec(output);
      if (match) {
        const actual = Number(match[1]);
        resolve({ name, port: actual, url: `http://127.0.0.1:${actual}`, process: child, stop });
      }
    });
    child.once('exit', (code) => reject(new Error(`instance ${name} exited (${code}) before listening:\n${output}`)));
  });
}

/** Resolves once something accepts connections on host:port (polling; gives up after 10 s). */
async function waitForPort(host, port, failed) {
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (failed()) throw new Error('the process exited');
    const open = await new Promise((resolve) => {
      const socket = connect(port, host === '0.0.0.0' ? '127.0.0.1' : host);
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on ${host}:${port} after 10 s`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

// Run directly: start everything, print where, stop everything on Ctrl-C / SIGTERM.
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const ports = (process.env.INSTANCE_PORTS ?? '3001,3002').split(',').map(Number);
  const app = await start({
    port: Number(process.env.PORT ?? 3000),
    host: process.env.HOST,
    instancePorts: ports,
    nginx: process.env.NGINX,
  });
  console.log(`nginx on ${app.url} (round-robin)`);
  for (const instance of app.instances) {
    console.log(`  instance ${instance.name}: ${instance.url} (pid ${instance.process.pid})`);
  }
  console.log(`Open ${app.url}/ in two tabs; kill an instance's pid and watch its page move to the other.`);
  let stopping = false;
  const shutdown = async () => {
    if (stopping) return;
    stopping = true;
    await app.stop();
    process.exit(0);
  };
  process.on('SIGINT', shutdown);
  process.on('SIGTERM', shutdown);
  // An instance that dies is not restarted: that is the point of the demo.
  for (const instance of app.instances) {
    instance.process.once('exit', (code, signal) =>
      console.log(`instance ${instance.name} exited (${signal ?? code})`),
    );
  }
}
