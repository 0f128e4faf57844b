/**
 * Rolling restart with no loss. Two instances of the multi-instance example
 * (`examples/multi-instance/server.js`: Express, a hub on the Redis backplane, SIGTERM → `hub.close({
 * retry })` → exit) behind the example's nginx (round-robin, `proxy_buffering off`). A publisher on the
 * same Redis stream (this process's own hub) sends 100 events/s with sequential data; N real
 * `EventSource` clients read through nginx. Then a full rolling restart while events keep flowing:
 * SIGTERM A (its clients move to B), start A again on its port, wait until nginx routes to it again,
 * SIGTERM B (every client moves to A). Every client must end with every published event exactly once,
 * in order, with the publisher's ids, and must have been served by the instances the restart implies.
 *
 * N = 50 (reduced, `pnpm test`/CI) or 500 with `SSEKIT_STRESS=full` (`pnpm test:stress`).
 */
import { type ChildProcess, fork } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { EventSource } from 'eventsource';
import { afterAll, beforeAll, expect, test } from 'vitest';
import {
  buildDist,
  deleteKeys,
  describeIf,
  freePort,
  REDIS_URL,
  redisReachable,
  uniqueKey,
} from '../packages/redis/test/redis-server.js';
import { type Instance, type Nginx, startInstance, startNginx } from './restart/cluster.js';

const FULL = process.env.SSEKIT_STRESS === 'full';
const CLIENTS = FULL ? 500 : 50;
const RATE = 100; // events per second
const PUBLISHER = fileURLToPath(new URL('./restart/publisher.mjs', import.meta.url));
const NGINX = process.env.NGINX ?? '/usr/sbin/nginx';
// The example's streams end with this retry hint on SIGTERM, so clients come back after about this long.
const SHUTDOWN_RETRY_MS = 500;

const ready = (await redisReachable()) && existsSync(NGINX);

interface Published {
  seq: number;
  id: string;
}

/** Epoch ms with sub-ms precision: comparable with the publisher process's clock. */
const now = () => performance.timeOrigin + performance.now();

/** A real EventSource client through nginx, recording what it receives and when it reconnects. */
class Client {
  readonly seqs: number[] = [];
  readonly ids: string[] = [];
  readonly receivedAt: number[] = [];
  /** The instance of each connection (the example sends it, without an id, when a stream opens). */
  readonly served: string[] = [];
  readonly openedAt: number[] = [];
  /** Each reconnection: when the stream ended (the `error` event) and when the next one opened. */
  readonly reconnects: { lostAt: number; openAt: number }[] = [];
  closedForGood = false;
  #lostAt: number | undefined;
  readonly source: EventSource;

  constructor(url: string) {
    this.source = new EventSource(`${url}/events`);
    this.source.addEventListener('open', () => {
      const at = now();
      this.openedAt.push(at);
      if (this.#lostAt !== undefined) this.reconnects.push({ lostAt: this.#lostAt, openAt: at });
      this.#lostAt = undefined;
    });
    this.source.addEventListener('error', () => {
      this.#lostAt ??= now();
      // CLOSED: the client gave up (a non-200 answer, e.g. nginx's 502): it would never come back.
      if (this.source.readyState === EventSource.CLOSED) this.closedForGood = true;
    });
    this.source.addEventListener('instance', (event) => {
      this.served.push((JSON.parse(event.data) as { instance: string }).instance);
    });
    this.source.addEventListener('message', (event) => {
      this.seqs.push(Number((JSON.parse(event.data) as { text: string }).text));
      this.ids.push(event.lastEventId);
      this.receivedAt.push(now());
    });
  }

  get current(): string | undefined {
    return this.served.at(-1);
  }
}

/**
 * The publisher process (restart/publisher.mjs): a hub on the same stream publishing `{ text: seq }` at
 * `RATE` per second, one at a time, so seq order is publish order.
 */
class Publisher {
  readonly published: Published[] = [];
  /** When each publish resolved (epoch ms). */
  readonly publishedAt: number[] = [];
  readonly errors: string[] = [];
  startedAt = 0;
  stoppedAt = 0;
  readonly #child: ChildProcess;
  readonly #exited: Promise<unknown>;

  constructor(env: Record<string, string>) {
    this.#child = fork(PUBLISHER, [], {
      env: { ...process.env, ...env, RATE: String(RATE) },
      execArgv: [],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.#exited = new Promise((resolve) => this.#child.once('exit', resolve));
    this.#child.on('message', (message: { seq?: number; id?: string; at?: number; error?: string }) => {
      if (message.error !== undefined) this.errors.push(message.error);
      if (message.seq === undefined) return;
      // One publish at a time, reported in order: the list's index is the seq.
      if (message.seq !== this.published.length + 1) this.errors.push(`seq ${message.seq} out of order`);
      this.published.push({ seq: message.seq, id: message.id as string });
      this.publishedAt.push(message.at as number);
    });
  }

  /** Resolves once it is connected to Redis, about to publish #1. */
  ready(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#child.on('message', (message: { ready?: boolean }) => message.ready && resolve());
      this.#exited.then(() => reject(new Error('the publisher exited before it was ready')));
    });
  }

  /** Stops publishing; resolves once the publisher reported its last event and exited. */
  async stop(): Promise<void> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return;
    const done = new Promise<void>((resolve) =>
      this.#child.on('message', (message: { stopped?: number; startedAt?: number; stoppedAt?: number }) => {
        if (message.stopped === undefined) return;
        if (message.stopped !== this.published.length) this.errors.push('the publisher reported fewer events');
        this.startedAt = message.startedAt as number;
        this.stoppedAt = message.stoppedAt as number;
        resolve();
      }),
    );
    this.#child.send('stop');
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), 5000);
    await Promise.race([done.then(() => this.#exited), this.#exited]);
    clearTimeout(timer);
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor(condition: () => boolean, what: () => string, timeout = 20_000): Promise<void> {
  const deadline = Date.now() + timeout;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what()}`);
    await sleep(20);
  }
}

describeIf(ready, `Redis at ${REDIS_URL} and nginx at ${NGINX}`)('rolling restart behind nginx', () => {
  const stream = uniqueKey('rolling-restart');
  const env = { STREAM: stream, TICK_MS: '0', RETRY: String(SHUTDOWN_RETRY_MS), REDIS_URL };
  const instances = new Map<string, Instance>();
  const ports = new Map<string, number>();
  const clients: Client[] = [];
  let nginx: Nginx | undefined;
  let publisher: Publisher | undefined;

  beforeAll(async () => {
    // server.js and the publisher import the built packages, as a deployed app does.
    buildDist(['core', 'express', 'redis']);
    for (const name of ['A', 'B']) {
      const instance = await startInstance(name, 0, env);
      instances.set(name, instance);
      ports.set(name, instance.port);
    }
    nginx = await startNginx(
      await freePort(),
      [...instances.values()].map((i) => i.port),
      { workerConnections: 4 * CLIENTS + 256, binary: NGINX },
    );
  });

  afterAll(async () => {
    await publisher?.stop();
    for (const client of clients) client.source.close();
    await nginx?.stop();
    await Promise.all([...instances.values()].map((i) => i.stop('SIGTERM', 3000)));
    await deleteKeys(stream);
  });

  /** Output of the instances and nginx, for a failure message. */
  const logs = (): string =>
    [...instances.values()].map((i) => `--- ${i.name} ---\n${i.output()}`).join('\n') +
    `\n--- nginx ---\n${nginx?.log().slice(-4000) ?? ''}`;

  /** SIGTERMs `name` and resolves once every client is served again, by `to`; returns the time it took. */
  async function restartAway(name: string, to: string): Promise<{ movers: number; worstMs: number; atEvent: number }> {
    const victim = instances.get(name) as Instance;
    const movers = clients.filter((c) => c.current === name);
    const opensBefore = new Map(movers.map((c) => [c, c.openedAt.length]));
    const killedAt = now();
    const atEvent = (publisher as Publisher).published.length;
    const exit = await victim.stop('SIGTERM');
    // A graceful exit (code 0), not the SIGKILL fallback.
    expect(exit, logs()).toBe(0);
    instances.delete(name);
    await waitFor(
      () => clients.every((c) => c.current === to && !c.closedForGood),
      () => {
        const stuck = clients.filter((c) => c.current !== to || c.closedForGood);
        return `every client to be served by ${to}; ${stuck.length} are not (e.g. served ${JSON.stringify(stuck[0]?.served)}, closed for good: ${stuck.filter((c) => c.closedForGood).length})\n${logs()}`;
      },
    );
    let worstMs = 0;
    for (const c of movers) {
      const reopened = c.openedAt[opensBefore.get(c) as number] as number;
      worstMs = Math.max(worstMs, reopened - killedAt);
    }
    return { movers: movers.length, worstMs, atEvent };
  }

  /** Resolves once a request through nginx is answered by `name`. */
  async function nginxRoutesTo(name: string): Promise<void> {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const res = await fetch(`${(nginx as Nginx).url}/instance`);
      if (res.ok && ((await res.json()) as { instance: string }).instance === name) return;
      if (Date.now() > deadline) throw new Error(`nginx never routed to ${name} again\n${logs()}`);
      await sleep(200);
    }
  }

  test(`${CLIENTS} clients, ${RATE} events/s: SIGTERM A, restart it, SIGTERM B — every event exactly once, in order`, {
    timeout: FULL ? 300_000 : 120_000,
  }, async () => {
    const url = (nginx as Nginx).url;
    for (let i = 0; i < CLIENTS; i++) clients.push(new Client(url));
    await waitFor(
      () => clients.every((c) => c.served.length === 1),
      () => `${clients.filter((c) => c.served.length === 0).length} clients to open`,
    );
    const firstOn = new Map(clients.map((c) => [c, c.current as string]));
    const onA = clients.filter((c) => firstOn.get(c) === 'A').length;
    // Round-robin spread them over both instances (else the restart would prove little).
    expect(onA).toBeGreaterThan(0);
    expect(onA).toBeLessThan(CLIENTS);

    // Every client is connected before the first event: each must end with all of them.
    publisher = new Publisher(env);
    const pub = publisher;
    await pub.ready();
    await waitFor(
      () => clients.every((c) => c.seqs.length >= RATE),
      () => 'a second of events at every client',
    );

    // 1. A goes away; its clients come back through nginx on B, resuming from their Last-Event-ID.
    const first = await restartAway('A', 'B');

    // 2. A comes back on its port. nginx marked it failed while it was down (max_fails 1,
    // fail_timeout 10 s by default) and routes to it again once that has passed.
    instances.set('A', await startInstance('A', ports.get('A') as number, env));
    await nginxRoutesTo('A');

    // 3. B goes away; every client (all of them are on B now) moves to A.
    const second = await restartAway('B', 'A');

    // Events keep flowing a little longer on the new arrangement, then stop.
    await sleep(1000);
    await pub.stop();
    expect(pub.errors).toEqual([]);
    const total = pub.published.length;
    await waitFor(
      () => clients.every((c) => c.seqs.length >= total),
      () => {
        const behind = clients.filter((c) => c.seqs.length < total);
        return `all ${total} events at every client; ${behind.length} behind (e.g. ${behind[0]?.seqs.length})`;
      },
    );
    // Anything extra (a late duplicate) would arrive now.
    await sleep(300);

    let duplicates = 0;
    let missing = 0;
    let outOfOrder = 0;
    let wrongIds = 0;
    let delivered = 0;
    for (const c of clients) {
      delivered += c.seqs.length;
      const distinct = new Set(c.seqs);
      duplicates += c.seqs.length - distinct.size;
      for (let seq = 1; seq <= total; seq++) if (!distinct.has(seq)) missing++;
      for (let i = 1; i < c.seqs.length; i++) if ((c.seqs[i] as number) <= (c.seqs[i - 1] as number)) outOfOrder++;
      for (let i = 0; i < c.seqs.length; i++) {
        if (c.ids[i] !== pub.published[(c.seqs[i] as number) - 1]?.id) wrongIds++;
      }
    }
    const reconnects = clients.flatMap((c) => c.reconnects);
    const maxReconnect = Math.max(0, ...reconnects.map((r) => r.openAt - r.lostAt));
    // Published while a client was away: it can only have them from the replay of its Last-Event-ID.
    const replayed = reconnects
      .map((r) => pub.publishedAt.filter((t) => t > r.lostAt && t < r.openAt).length)
      .reduce((a, b) => a + b, 0);
    const seconds = (pub.stoppedAt - pub.startedAt) / 1000;
    // Publish → receive, every delivery (replayed ones included): shows how loaded the machine was.
    const latencies = clients
      .flatMap((c) => c.seqs.map((seq, i) => (c.receivedAt[i] as number) - (pub.publishedAt[seq - 1] as number)))
      .sort((x, y) => x - y);
    const p50 = latencies[Math.floor(latencies.length * 0.5)] ?? 0;
    const p99 = latencies[Math.floor(latencies.length * 0.99)] ?? 0;
    console.log(
      `[rolling restart] ${CLIENTS} clients (${onA} on A, ${CLIENTS - onA} on B), ${total} events in ${seconds.toFixed(1)} s ` +
        `(${(total / seconds).toFixed(0)}/s; SIGTERM A at #${first.atEvent}, B at #${second.atEvent}), ${delivered} delivered; ` +
        `${reconnects.length} reconnects (${first.movers} A→B, ${second.movers} B→A), ` +
        `max reconnect ${maxReconnect.toFixed(0)} ms after the stream ended (retry hint ${SHUTDOWN_RETRY_MS} ms), ` +
        `max SIGTERM→reopen ${Math.max(first.worstMs, second.worstMs).toFixed(0)} ms; ` +
        `publish→receive p50 ${p50.toFixed(0)} ms, p99 ${p99.toFixed(0)} ms; ` +
        `${replayed} events published while a client was away (resumed from Last-Event-ID); ` +
        `duplicates ${duplicates}, missing ${missing}, out of order ${outOfOrder}, wrong ids ${wrongIds}`,
    );

    expect({ duplicates, missing, outOfOrder, wrongIds }).toEqual({
      duplicates: 0,
      missing: 0,
      outOfOrder: 0,
      wrongIds: 0,
    });
    const expected = Array.from({ length: total }, (_, i) => i + 1);
    for (const c of clients) {
      expect(c.seqs).toEqual(expected);
      // A's clients went A → B → A, B's went B → A; nobody reconnected otherwise or gave up.
      expect(c.served).toEqual(firstOn.get(c) === 'A' ? ['A', 'B', 'A'] : ['B', 'A']);
      expect(c.openedAt.length).toBe(c.served.length);
      expect(c.closedForGood).toBe(false);
    }
    // Not vacuous: clients were away while events were published, and caught up by replay.
    expect(replayed).toBeGreaterThan(0);
    expect(first.movers).toBe(onA);
    expect(second.movers).toBe(CLIENTS);
  });
});
