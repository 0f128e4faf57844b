/**
 * The hub model on the Redis backplane: the very runner the in-memory hub passes
 * (`packages/core/test/hub.model.ts`), with a hub whose ids, history and delivery all come from a Redis
 * stream. Every run gets a fresh stream key; `SSEKIT_MODEL_RUNS` raises the run count.
 *
 * Two settings, because `XADD … MAXLEN ~` trims whole internal nodes (`stream-node-max-entries`, 100 by
 * default), so on a stock server a small `maxLen` is hardly ever reached:
 * - the shared Redis (`REDIS_URL`), stock settings: a history far larger than a run publishes, so
 *   nothing is trimmed and the model is exact — every resume replays exactly what was missed, and the
 *   only gaps are ids the stream never issued;
 * - a redis-server of the test's own with `stream-node-max-entries 1`, where `MAXLEN ~ 6` trims to
 *   exactly 6 entries: eviction is real and gaps are checked against the model (stream-wide, since the
 *   backplane detects loss on the whole stream, not per topic).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createEventStream, createHub, type SseError } from '@ssekit/core';
import { collectEvents } from '@ssekit/core/testing';
import { type RedisBackplane, redisBackplane } from '@ssekit/redis';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, expect, test } from 'vitest';
import { type HubModelSummary, modelRuns, runHubModel } from '../../core/test/hub.model.js';
import {
  deleteKeys,
  describeIf,
  freePort,
  hasRedisServer,
  REDIS_URL,
  redisReachable,
  uniqueKey,
} from './redis-server.js';

const runs = modelRuns(30);
// Each run is a real server, real sockets and two Redis connections; the stress run multiplies runs.
const timeout = 60_000 + runs * 2_000;

/** Backplane errors (connection trouble, malformed entries): none may happen during a run. */
const backplaneErrors: SseError[] = [];
afterEach(() => {
  const errors = backplaneErrors.splice(0);
  expect(errors.map((e) => e.message)).toEqual([]);
});

/**
 * A `makeBackplane` for the runner: a fresh stream key per call (recorded in `keys` for cleanup), and
 * ready before it is handed over, so the hub's first position is the stream's real end (`0-0`).
 */
function backplanes(url: string, maxLen: number, keys: string[]): () => Promise<RedisBackplane> {
  return async () => {
    const stream = uniqueKey('model');
    keys.push(stream);
    const backplane = redisBackplane({ url, stream, maxLen, blockMs: 1000, onError: (e) => backplaneErrors.push(e) });
    await backplane.ready;
    return backplane;
  };
}

function report(name: string, summary: HubModelSummary): void {
  const commands = Object.entries(summary.commands)
    .filter(([, n]) => n > 0)
    .map(([kind, n]) => `${kind} ${n}`)
    .join(', ');
  console.log(
    `[hub model] redis, ${name}: ${summary.runs} runs, ${summary.published} published, ${summary.events} events checked, ` +
      `${summary.replays} replays, ${summary.gaps} gaps; commands: ${commands}`,
  );
}

describeIf(await redisReachable(), `Redis at ${REDIS_URL}`)('hub model on the Redis backplane (shared Redis)', () => {
  const keys: string[] = [];
  afterAll(async () => {
    await deleteKeys(...keys.splice(0));
  });

  test('resume, unknown ids, races and topic changes match the model', { timeout }, async () => {
    // Nothing is trimmed (a run publishes far fewer than maxLen), so historySize is exact; the slack
    // only states what `MAXLEN ~` may keep beyond it.
    const maxLen = 1000;
    const summary = await runHubModel({
      makeBackplane: backplanes(REDIS_URL, maxLen, keys),
      historySize: maxLen,
      historySlack: 100,
      topicAwareGaps: false,
      runs,
    });
    report('no trimming', summary);
    // Not vacuous: resumes were answered from the stream, unknown ids gave gaps, resumes raced publishes.
    expect(summary.runs).toBe(runs);
    expect(summary.replays).toBeGreaterThan(0);
    expect(summary.gaps).toBeGreaterThan(0);
    expect(summary.commands.reconnect).toBeGreaterThan(0);
    expect(summary.commands.reconnectUnknown).toBeGreaterThan(0);
    expect(summary.commands.reconnectDuringPublishes).toBeGreaterThan(0);
  });
});

/** A redis-server of this file's own whose `MAXLEN ~` trimming is exact (one entry per stream node). */
class ExactTrimmingRedis {
  readonly #dir = mkdtempSync(join(tmpdir(), 'ssekit-model-redis-'));
  #child: ChildProcess | undefined;
  url = '';

  async start(): Promise<void> {
    const port = await freePort();
    this.url = `redis://127.0.0.1:${port}`;
    const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];
    args.push('--dir', this.#dir, '--stream-node-max-entries', '1');
    this.#child = spawn('redis-server', args, { stdio: 'ignore' });
    const deadline = Date.now() + 10_000;
    while (!(await redisReachable(this.url))) {
      if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not start`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  async stop(): Promise<void> {
    const child = this.#child;
    this.#child = undefined;
    if (child !== undefined && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await exited;
    }
    rmSync(this.#dir, { recursive: true, force: true });
  }
}

describeIf(hasRedisServer(), 'the redis-server binary')('hub model on the Redis backplane (exact trimming)', () => {
  const server = new ExactTrimmingRedis();
  const keys: string[] = [];
  beforeAll(() => server.start());
  afterAll(async () => {
    if (server.url !== '' && keys.length > 0) {
      const client = new Redis(server.url, { maxRetriesPerRequest: 1 });
      await client.del(...keys).finally(() => client.disconnect());
    }
    await server.stop();
  });

  test('history of 6 entries: eviction gives a gap when the model says so', { timeout }, async () => {
    // The backplane keeps exactly 6 entries, and each entry records the one before it (`prev`), so a
    // resume from the newest trimmed id is told apart from a loss: the model is exact (history 6, no
    // slack). Any resume from further back must be a gap, any other must replay exactly.
    const summary = await runHubModel({
      makeBackplane: backplanes(server.url, 6, keys),
      historySize: 6,
      historySlack: 0,
      topicAwareGaps: false,
      runs,
    });
    report('maxLen 6, exact trimming', summary);
    expect(summary.runs).toBe(runs);
    expect(summary.replays).toBeGreaterThan(0);
    expect(summary.gaps).toBeGreaterThan(0);
    expect(summary.commands.away).toBeGreaterThan(0);
  });

  // Found by the model (maxLen 6, 7 published, resume from #1): below the first entry the backplane
  // could not tell "trimmed up to my id" from "trimmed past it". Fixed by the `prev` field that the
  // publishing script stores in every entry.
  test('a resume from the newest trimmed entry replays what follows it, no gap', async () => {
    const stream = uniqueKey('model-boundary');
    keys.push(stream);
    const backplane = redisBackplane({ url: server.url, stream, maxLen: 6, onError: (e) => backplaneErrors.push(e) });
    const hub = createHub({ backplane });
    const http = createServer((req, res) => {
      void hub.subscribe(createEventStream(req, res, { keepalive: false }), 'a').catch(() => {});
    });
    try {
      const ids: string[] = [];
      for (let i = 1; i <= 7; i++) ids.push(await hub.publish('a', String(i)));
      // Entry #1 is trimmed, #2..#7 are held; wait until this instance delivered them all.
      while (backplane.position !== ids[6]) await new Promise((resolve) => setTimeout(resolve, 5));
      await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
      const url = `http://127.0.0.1:${(http.address() as AddressInfo).port}/`;
      const { events } = await collectEvents(url, { lastEventId: ids[0], count: 1 });
      expect(events[0]).toEqual({ type: 'message', data: '2', lastEventId: ids[1] });
    } finally {
      await hub.close();
      await backplane.close();
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    }
  });
});
