/**
 * Test support for everything that needs Redis: whether the shared one is reachable (skip outside CI,
 * fail under CI), unique stream keys, a private redis-server the test can kill and restart, and
 * instances of a hub on the Redis backplane in separate processes.
 */
import { type ChildProcess, fork, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { describe, it } from 'vitest';
import { ensureBuilt } from '../../../scripts/ensure-built.js';

export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const INSTANCE = fileURLToPath(new URL('./fixtures/instance.mjs', import.meta.url));

/** True when a Redis server answers PING at `url` within 2 s. */
export async function redisReachable(url = REDIS_URL): Promise<boolean> {
  const client = new Redis(url, {
    lazyConnect: true,
    retryStrategy: () => null,
    maxRetriesPerRequest: 0,
    connectTimeout: 2000,
    enableOfflineQueue: false,
  });
  client.on('error', () => {});
  try {
    await client.connect();
    return (await client.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}

/**
 * `describe` when `ready` is true. Otherwise, under `CI=true`, a suite with one failing test saying
 * why (CI must not pass silently without Redis); elsewhere `describe.skip`, with a visible warning.
 */
export function describeIf(ready: boolean, why: string): (name: string, body: () => void) => void {
  if (ready) return describe;
  if (process.env.CI === 'true') {
    describe(`needs ${why}`, () => {
      it(`${why} is available (CI=true: required)`, () => {
        throw new Error(`${why} is not available; the Redis tests cannot run`);
      });
    });
  } else {
    console.warn(`\n[ssekit] SKIPPING Redis tests: ${why} is not available (set REDIS_URL; CI=true makes this fail)\n`);
  }
  return describe.skip;
}

let keys = 0;
/** A stream key no other run or test uses. */
export function uniqueKey(name: string): string {
  return `ssekit-test:${name}:${process.pid}:${Date.now().toString(36)}:${++keys}`;
}

/** Deletes test keys. */
export async function deleteKeys(...names: string[]): Promise<void> {
  if (names.length === 0) return;
  const client = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  try {
    await client.del(...names);
  } finally {
    client.disconnect();
  }
}

export { freePort } from '../../core/test/support/clients.js';

/** True when the `redis-server` binary can be run. */
export function hasRedisServer(): boolean {
  return spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;
}

/** A redis-server of the test's own, with an fsync'd append-only file so a restart keeps what it accepted. */
export class RedisServer {
  readonly dir = mkdtempSync(join(tmpdir(), 'ssekit-redis-'));
  #child: ChildProcess | undefined;

  constructor(readonly port: number) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--save', ''];
    args.push('--appendonly', 'yes', '--appendfsync', 'always', '--dir', this.dir);
    this.#child = spawn('redis-server', args, { stdio: 'ignore' });
    const deadline = Date.now() + 10_000;
    while (!(await redisReachable(this.url))) {
      if (Date.now() > deadline) throw new Error(`redis-server on port ${this.port} did not start`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** Kills the server at once (SIGKILL: a crash, no shutdown save). */
  async kill(): Promise<void> {
    const child = this.#child;
    this.#child = undefined;
    if (child === undefined || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }

  async stop(): Promise<void> {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * Builds the dist of `packages` (default core and redis), which child processes import (tests import
 * the sources), when it is missing or older than the sources. After `pnpm build` this costs a few
 * `stat` calls. tsc leaves unchanged outputs alone, so the newest file on each side is compared.
 */
export function buildDist(packages: string[] = ['core', 'redis']): void {
  ensureBuilt(packages);
}

/** A hub on the Redis backplane, serving SSE in a process of its own (fixtures/instance.mjs). */
export class Instance {
  #child: ChildProcess | undefined;
  port = 0;

  constructor(readonly env: Record<string, string>) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<this> {
    const child = fork(INSTANCE, [], {
      env: { ...process.env, ...this.env },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.#child = child;
    this.port = await new Promise<number>((resolve, reject) => {
      child.once('message', (message) => resolve((message as { port: number }).port));
      child.once('exit', (code) => reject(new Error(`instance exited with ${code} before listening`)));
    });
    return this;
  }

  /** Publishes through this instance's hub; resolves to the id, rejects with the instance's error code. */
  async publish(topics: string | string[], data: unknown, event?: string): Promise<string> {
    const res = await fetch(`${this.url}/publish`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ topics, data, event }),
    });
    const body = (await res.json()) as { id?: string; code?: string; message?: string };
    if (!res.ok) throw Object.assign(new Error(body.message), { code: body.code });
    return body.id as string;
  }

  /** Closes every stream of the instance (with a short retry hint): clients reconnect. */
  async dropStreams(): Promise<void> {
    await fetch(`${this.url}/drop`, { method: 'POST' });
  }

  async stop(): Promise<void> {
    const child = this.#child;
    this.#child = undefined;
    if (child === undefined || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(timer);
  }
}

/**
 * A TCP proxy in front of Redis that can freeze the connections it carries: no byte passes either
 * way, yet no socket closes — what a half-open connection (a NAT or firewall dropping state) looks
 * like to the client. Connections made after `freeze()` pass normally.
 */
export class FreezingProxy {
  readonly #server = createServer((client) => this.#pipe(client));
  readonly #pairs = new Set<{ client: Socket; upstream: Socket; frozen: boolean }>();
  port = 0;

  /** `delay`: ms by which everything Redis sends is held back (a reader lagging behind others). */
  constructor(
    readonly target: string,
    readonly delay = 0,
  ) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    this.port = (this.#server.address() as { port: number }).port;
    return this;
  }

  freeze(): void {
    for (const pair of this.#pairs) pair.frozen = true;
  }

  async close(): Promise<void> {
    for (const { client, upstream } of this.#pairs) {
      client.destroy();
      upstream.destroy();
    }
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #pipe(client: Socket): void {
    const target = new URL(this.target);
    const upstream = connect(Number(target.port || 6379), target.hostname);
    const pair = { client, upstream, frozen: false };
    this.#pairs.add(pair);
    client.on('data', (chunk) => pair.frozen || upstream.write(chunk));
    upstream.on('data', (chunk) => {
      if (pair.frozen) return;
      if (this.delay > 0) setTimeout(() => pair.frozen || client.write(chunk), this.delay);
      else client.write(chunk);
    });
    const end = (): void => {
      this.#pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('close', end).on('error', end);
    upstream.on('close', end).on('error', end);
  }
}
