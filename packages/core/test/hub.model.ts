/**
 * The hub, model-checked over the wire. This is a reusable runner, not a test file:
 * `hub.model.test.ts` runs it on the in-memory backplane, and `@ssekit/redis`'s tests run the very same
 * model on the Redis backplane:
 *
 * ```ts
 * import { runHubModel } from '../../core/test/hub.model.js';
 * await runHubModel({ makeBackplane: () => redisBackplane({ url, stream: uniqueKey(), maxLen: 6 }), historySize: 6, runs: 30 });
 * ```
 *
 * Each run builds a real hub (`createHub({ backplane, history })`) behind a real `node:http` server on
 * an ephemeral port. Clients are real sockets (`http.get` + the spec parser of `@ssekit/core/testing`);
 * the server subscribes each stream to the topics named in `?topics=`. fast-check then drives random
 * interleavings of publish, connect, disconnect, reconnect with `Last-Event-ID` (header or query),
 * reconnect with an id the hub never issued, a reconnect or connect racing a burst of publishes,
 * adding/removing topics of an open stream, and (in memory, with `ttl`) history ageing out.
 *
 * The model is a list of every published message and, per client, its topics and resume point. After
 * every command the runner settles (every published message delivered by the backplane, then a sync
 * comment written to every open stream and read back by its client, so everything written before it
 * has arrived) and checks:
 * - every open connection received exactly the events of its topics after its resume point, in
 *   order, no duplicate, nothing else (id, type and data of each);
 * - a gap event (`ssekit-gap`) arrived exactly when history lost a message of that client's topics
 *   after its resume point (topic-aware: a message of another topic being evicted is no gap), carrying
 *   the requested id and the oldest id still held, with the position as its id;
 * - every client holds the last event id it should (including the id-only frame a new stream gets);
 * - `hub.stats()`: streams, per-topic counts, published, delivered, frames, replays, gaps;
 * - the hub reported no error.
 *
 * A failure prints fast-check's seed and the shrunk command list, plus the model's log of the failing
 * run (every command, message id and what each connection was found to receive). `SSEKIT_MODEL_SEED`
 * (with the same `SSEKIT_MODEL_RUNS`) generates the same command lists again; a race may need a few
 * reruns to hit the same interleaving. `SSEKIT_MODEL_RUNS` sets the run count (the stress run raises it).
 *
 * What another backplane (Redis) must do to pass, and what the runner allows for:
 * - delivery may be asynchronous: the runner waits on `hub.stats().delivered` and on what clients
 *   read, never on timing; a reconnection after publishes may cut anywhere between what the hub had
 *   delivered and what was published, and the model accepts every consistent cut;
 * - ids are whatever the backplane assigns (the model maps them by what `publish()` resolved to, e.g.
 *   Redis entry ids); the position before anything was published may be `undefined` (then a new client
 *   gets no id-only frame) or any id that is not a message's;
 * - `replay(afterId, topics, upTo)` returns exactly the messages of `topics` in (afterId, upTo], or a
 *   gap; ids it never issued (the runner sends `bogus` and `never-issued-by-this-hub`) are a gap, not
 *   an error (a failed replay is reported to the hub's `onError`, which fails the run);
 * - history keeps the last `historySize` messages of all topics together (exact trimming; with
 *   approximate trimming say by how much more with `historySlack`); gaps are topic-aware unless
 *   `topicAwareGaps: false`;
 * - `makeBackplane` is called once per run and must give an isolated one (a fresh stream key), since
 *   `stats().delivered` must count only this run's messages.
 * Command kinds a backplane cannot support (e.g. `timePasses`, which needs `ttl`) can be left out
 * with `exclude`.
 */
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { isDeepStrictEqual } from 'node:util';
import { type Backplane, createEventStream, createHub, type EventStream, type Hub } from '@ssekit/core';
import { EventStreamParser, type ParsedEvent } from '@ssekit/core/testing';
import fc from 'fast-check';
import { vi } from 'vitest';

/** Options of {@link runHubModel}. */
export interface HubModelOptions {
  /**
   * A fresh backplane for each run (use a unique Redis stream key per call). It is closed by the
   * runner after the hub. Default: none, the hub's own in-memory backplane with `{ size: historySize, ttl }`.
   */
  makeBackplane?: () => Backplane | Promise<Backplane>;
  /** Messages (of all topics together) the history keeps: the backplane's exact bound. Use a small one (5–8). */
  historySize: number;
  /**
   * How many messages past `historySize` the backplane may keep too (approximate trimming, e.g. Redis
   * `MAXLEN ~`). Where the answer depends on those, both a gap and a full replay are accepted. Default 0.
   */
  historySlack?: number;
  /**
   * True (default) when a gap is reported only if a message of the client's own topics was lost; false
   * for a backplane that reports a gap whenever any message after the id was lost.
   */
  topicAwareGaps?: boolean;
  /**
   * In-memory history only: the history's `ttl` in ms. Enables the "time passes" command, which moves a
   * frozen `Date` (vitest fake timers, `Date` only) past the ttl so that ageing out is deterministic.
   */
  ttl?: number;
  /** Runs (each a fresh server and hub). */
  runs: number;
  /** Commands per run at most. Default 25. */
  maxCommands?: number;
  /** Clients (each holds at most one connection at a time). Default 3. */
  clients?: number;
  /** Topics clients and publishers pick from. Default `['a', 'b', 'c']`. */
  topics?: readonly string[];
  /** Longest wait for a settle condition, in ms. Default 3000. */
  settleTimeout?: number;
  /** Gap event name the hub is created with. Default `'ssekit-gap'`. */
  gapEvent?: string;
  /** Command kinds to leave out (those a backplane cannot support). Default none. */
  exclude?: readonly CommandKind[];
  /** fast-check seed (default: `SSEKIT_MODEL_SEED`, else random). */
  seed?: number;
  /**
   * The hub's `maxBufferedBytes`. With a small one, a client that stops reading through a stall
   * (the `stall` command) is cut by the hub: its connection ends after what it had received, and the
   * model checks that was an exact prefix of what it should get. Default: the hub's.
   */
  maxBufferedBytes?: number;
  /**
   * Serves the model's streams through an adapter instead of `createEventStream()` + `hub.subscribe()`
   * on `node:http`: see {@link ModelServe}. Every adapter's tests run the model this way.
   */
  serve?: ModelServe;
}

/**
 * Serves `hub` through an adapter's route: a request `GET <url>?conn=KEY&topics=a,b` (with the client's
 * `Last-Event-ID` header or `lastEventId` query) opens a stream subscribed to those topics, and
 * `opened(KEY, stream)` is called once it is live. Faults go to `report`. Resolves to the URL (path
 * included) and a way to close the server.
 */
export type ModelServe = (
  hub: Hub,
  opened: (key: string, stream: EventStream) => void,
  report: (error: unknown) => void,
) => Promise<{ url: string; close(): Promise<void> }>;

const COMMAND_KINDS = [
  'publish',
  'connect',
  'disconnect',
  'reconnect',
  'reconnectUnknown',
  'away',
  'reconnectDuringPublishes',
  'connectDuringPublishes',
  'addTopic',
  'removeTopic',
  'rejoin',
  'timePasses',
  'stall',
] as const;

/** The kinds of command the model generates. */
export type CommandKind = (typeof COMMAND_KINDS)[number];

/** What the runs exercised, so that a caller can show that the model was not passed vacuously. */
export interface HubModelSummary {
  runs: number;
  /** Commands executed (not skipped by their precondition), by kind. */
  commands: Record<CommandKind, number>;
  published: number;
  /** Resumes answered from history / with a gap event. */
  replays: number;
  gaps: number;
  /** Events the clients received and the model checked. */
  events: number;
  /** Streams the hub cut for its `maxBufferedBytes`. */
  cut: number;
}

/** The run count: `SSEKIT_MODEL_RUNS` when set, else `fallback`. */
export function modelRuns(fallback: number): number {
  const value = Number(process.env.SSEKIT_MODEL_RUNS);
  return Number.isSafeInteger(value) && value > 0 ? value : fallback;
}

/**
 * Runs the hub model `options.runs` times. Resolves with what was exercised when every run passed;
 * rejects with fast-check's report (seed, shrunk commands) and the failing run's log otherwise.
 */
export async function runHubModel(options: HubModelOptions): Promise<HubModelSummary> {
  const config = resolveConfig(options);
  const arbitraries = commandArbitraries(config);
  const summary: HubModelSummary = {
    runs: 0,
    commands: Object.fromEntries(COMMAND_KINDS.map((kind) => [kind, 0])) as Record<CommandKind, number>,
    published: 0,
    replays: 0,
    gaps: 0,
    events: 0,
    cut: 0,
  };
  const property = fc.asyncProperty(
    fc.commands(arbitraries, { maxCommands: config.maxCommands, size: 'max' }),
    async (cmds) => {
      const env = await startRun(config);
      try {
        await fc.asyncModelRun(() => ({ model: env.model, real: env.real }), cmds);
        // Anything that arrived late (an extra event after the last check) shows up behind a final
        // message to every topic.
        await publishAndCheck(env.model, env.real, config.topics, undefined);
        summary.runs++;
        for (const kind of env.model.executed) summary.commands[kind]++;
        summary.published += env.model.published.length;
        summary.replays += env.model.replays;
        summary.gaps += env.model.gaps;
        summary.events += env.model.frames + env.model.gaps;
        summary.cut += env.real.hub.stats().cut;
      } catch (error) {
        throw withLog(error, env.model.log);
      } finally {
        await env.close();
      }
    },
  );
  const seed = options.seed ?? envNumber('SSEKIT_MODEL_SEED');
  const details = await fc.check(property, {
    numRuns: config.runs,
    ...(seed === undefined ? {} : { seed }),
  });
  if (details.failed) {
    const report = await fc.asyncDefaultReportMessage(details);
    const error = details.errorInstance;
    throw new Error(
      // Races depend on timing, so a seed replays the same command lists, not always the same failure.
      `hub model failed (${details.numRuns} runs); rerun with SSEKIT_MODEL_SEED=${details.seed} SSEKIT_MODEL_RUNS=${config.runs}\n` +
        `${report ?? ''}\n${error instanceof Error ? error.message : String(error)}`,
    );
  }
  return summary;
}

// ---------------------------------------------------------------------------------------------------
// Configuration

interface Config {
  makeBackplane: (() => Backplane | Promise<Backplane>) | undefined;
  historySize: number;
  historySlack: number;
  topicAware: boolean;
  ttl: number | undefined;
  runs: number;
  maxCommands: number;
  clients: number;
  topics: readonly string[];
  settleTimeout: number;
  gapEvent: string;
  exclude: ReadonlySet<CommandKind>;
  serve: ModelServe | undefined;
  maxBufferedBytes: number | undefined;
}

function resolveConfig(options: HubModelOptions): Config {
  if (options.ttl !== undefined && options.makeBackplane !== undefined) {
    throw new Error('runHubModel: ttl is for the in-memory history only');
  }
  return {
    makeBackplane: options.makeBackplane,
    historySize: options.historySize,
    historySlack: options.historySlack ?? 0,
    topicAware: options.topicAwareGaps ?? true,
    ttl: options.ttl,
    runs: options.runs,
    maxCommands: options.maxCommands ?? 25,
    clients: options.clients ?? 3,
    topics: options.topics ?? ['a', 'b', 'c'],
    settleTimeout: options.settleTimeout ?? 3000,
    gapEvent: options.gapEvent ?? 'ssekit-gap',
    exclude: new Set(options.exclude ?? []),
    serve: options.serve,
    maxBufferedBytes: options.maxBufferedBytes,
  };
}

function envNumber(name: string): number | undefined {
  const value = process.env[name];
  if (value === undefined || value === '') return undefined;
  const n = Number(value);
  return Number.isSafeInteger(n) ? n : undefined;
}

// ---------------------------------------------------------------------------------------------------
// The model

interface Published {
  /** 1-based position in publish order. */
  seq: number;
  id: string;
  topics: readonly string[];
  event: string | undefined;
  data: string;
}

interface ConnModel {
  key: string;
  /** Topics the stream holds now (add/remove change them). */
  topics: Set<string>;
  /** False once every topic was removed: the stream is open but out of the hub. */
  inHub: boolean;
  /** Everything this connection must have received, in order. */
  expected: ParsedEvent[];
}

interface ClientModel {
  /** The last event id the client holds ('' for none): what it sends back when it reconnects. */
  lastId: string;
  /** Topics of its last request. */
  queryTopics: readonly string[];
  conn: ConnModel | undefined;
}

interface Model {
  config: Config;
  published: Published[];
  seqOf: Map<string, number>;
  /** The backplane's position before anything was published. */
  initialPosition: string | undefined;
  /** Messages published before the last "time passes" (all aged out of history). */
  expiredUpTo: number;
  clients: ClientModel[];
  gaps: number;
  replays: number;
  frames: number;
  executed: CommandKind[];
  log: string[];
}

/** The id that marks position `p` (messages 1..p published): what a new stream is told. */
function positionId(m: Model, p: number): string | undefined {
  return p === 0 ? m.initialPosition : m.published[p - 1]?.id;
}

/** The position an id stands for, or undefined for an id this hub never issued. */
function positionOf(m: Model, id: string): number | undefined {
  if (m.initialPosition !== undefined && id === m.initialPosition) return 0;
  return m.seqOf.get(id);
}

/** Messages evicted from history once `p` messages were published: [lo, hi] = [surely, possibly]. */
function evicted(m: Model, p: number): { surely: number; possibly: number } {
  const { historySize, historySlack } = m.config;
  return {
    surely: Math.max(0, p - historySize - historySlack, m.expiredUpTo),
    possibly: Math.max(0, p - historySize, m.expiredUpTo),
  };
}

function lostAfter(m: Model, after: number, upTo: number, topics: ReadonlySet<string>): boolean {
  for (let seq = after + 1; seq <= upTo; seq++) {
    const message = m.published[seq - 1] as Published;
    if (!m.config.topicAware || message.topics.some((t) => topics.has(t))) return true;
  }
  return false;
}

/** History surely lost a message of `topics` after position `after`, `p` messages being published. */
function mustGap(m: Model, after: number, topics: ReadonlySet<string>, p: number): boolean {
  return lostAfter(m, after, evicted(m, p).surely, topics);
}

/** History may have lost a message of `topics` after position `after`. */
function mayGap(m: Model, after: number, topics: ReadonlySet<string>, p: number): boolean {
  return lostAfter(m, after, evicted(m, p).possibly, topics);
}

function toEvent(message: Published): ParsedEvent {
  return { type: message.event ?? 'message', data: message.data, lastEventId: message.id };
}

/** What a stream of `topics` must receive of positions (after, upTo]. */
function matching(m: Model, after: number, upTo: number, topics: ReadonlySet<string>): ParsedEvent[] {
  const out: ParsedEvent[] = [];
  for (let seq = after + 1; seq <= upTo; seq++) {
    const message = m.published[seq - 1] as Published;
    if (message.topics.some((t) => topics.has(t))) out.push(toEvent(message));
  }
  return out;
}

function fail(m: Model, message: string): never {
  m.log.push(`FAILED: ${message}`);
  throw new Error(message);
}

// ---------------------------------------------------------------------------------------------------
// The real system: server, hub, clients

/** One client connection: a raw node:http GET read by the spec parser. */
class Wire {
  readonly key: string;
  readonly events: ParsedEvent[] = [];
  readonly parser: EventStreamParser;
  /** The body as text (the id-only frame is only visible here). */
  raw = '';
  ended = false;
  readonly response: Promise<http.IncomingMessage>;
  readonly #startLastId: string;
  readonly #request: http.ClientRequest;
  #response: http.IncomingMessage | undefined;
  readonly #decoder = new TextDecoder();

  constructor(url: string, key: string, headers: Record<string, string>, startLastId: string) {
    this.key = key;
    this.#startLastId = startLastId;
    this.parser = new EventStreamParser((event) => this.events.push(event));
    this.#request = http.get(url, { agent: false, headers: { accept: 'text/event-stream', ...headers } });
    this.response = new Promise((resolve, reject) => {
      this.#request.on('response', (res) => {
        this.#response = res;
        res.on('data', (chunk: Buffer) => {
          this.raw += this.#decoder.decode(chunk, { stream: true });
          this.parser.feed(chunk);
        });
        res.on('error', () => {});
        res.on('close', () => {
          this.ended = true;
        });
        resolve(res);
      });
      this.#request.on('error', (error) => {
        this.ended = true;
        reject(error);
      });
    });
    // Rejections surface through `response` where it is awaited; this one only stops "unhandled".
    this.response.catch(() => {});
  }

  /** The last event id, as `EventSource` keeps it across connections. */
  get lastEventId(): string {
    const id = this.parser.result.lastEventId;
    return id === '' ? this.#startLastId : id;
  }

  hasComment(text: string): boolean {
    return this.parser.result.comments.includes(text);
  }

  destroy(): void {
    this.#request.destroy();
  }

  /** Stops reading (the socket's buffers fill, and the server's writes back up). */
  pause(): void {
    this.#response?.pause();
  }

  resume(): void {
    this.#response?.resume();
  }
}

interface Real {
  hub: Hub;
  url: string;
  /** Server side: the stream of each connection key. */
  streams: Map<string, EventStream>;
  /** Server side: each connection's `hub.subscribe()` (resolved once the stream is live). */
  subscribed: Map<string, Promise<void>>;
  wires: (Wire | undefined)[];
  /** What each client would send as `Last-Event-ID` (kept across its connections). */
  lastIds: string[];
  errors: unknown[];
  nextConn: number;
  syncs: number;
}

interface Run {
  model: Model;
  real: Real;
  close(): Promise<void>;
}

async function startRun(config: Config): Promise<Run> {
  if (config.ttl !== undefined) {
    // Only Date is faked (and frozen): timers, sockets and the event loop run for real.
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() });
  }
  const backplane = config.makeBackplane ? await config.makeBackplane() : undefined;
  const errors: unknown[] = [];
  const hub = createHub({
    ...(backplane ? { backplane } : { history: { size: config.historySize, ttl: config.ttl ?? 0 } }),
    gapEvent: config.gapEvent,
    onError: (error) => errors.push(error),
    ...(config.maxBufferedBytes === undefined ? {} : { maxBufferedBytes: config.maxBufferedBytes }),
  });
  const streams = new Map<string, EventStream>();
  const subscribed = new Map<string, Promise<void>>();
  const served = await (config.serve ?? serveNodeHttp)(
    hub,
    (key, stream) => {
      streams.set(key, stream);
      stream.onClose(() => streams.delete(key));
      subscribed.set(key, Promise.resolve());
    },
    (error) => errors.push(error),
  );
  const real: Real = {
    hub,
    url: served.url,
    streams,
    subscribed,
    wires: Array.from({ length: config.clients }, () => undefined),
    lastIds: Array.from({ length: config.clients }, () => ''),
    errors,
    nextConn: 0,
    syncs: 0,
  };
  const model: Model = {
    config,
    published: [],
    seqOf: new Map(),
    initialPosition: hub.backplane.position,
    expiredUpTo: 0,
    clients: Array.from({ length: config.clients }, () => ({ lastId: '', queryTopics: [], conn: undefined })),
    gaps: 0,
    replays: 0,
    frames: 0,
    executed: [],
    log: [],
  };
  return {
    model,
    real,
    async close() {
      try {
        for (const wire of real.wires) wire?.destroy();
        await hub.close();
        await backplane?.close();
        await served.close();
      } finally {
        if (config.ttl !== undefined) vi.useRealTimers();
      }
    },
  };
}

/** The default {@link ModelServe}: `node:http`, `createEventStream()` and `hub.subscribe()`, nothing else. */
const serveNodeHttp: ModelServe = async (hub, opened, report) => {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const key = url.searchParams.get('conn') ?? '';
    const topics = (url.searchParams.get('topics') ?? '').split(',');
    try {
      const stream = createEventStream(req, res, { keepalive: false });
      hub.subscribe(stream, topics).then(
        () => opened(key, stream),
        (error) => report(error),
      );
    } catch (error) {
      report(error);
      res.statusCode = 500;
      res.end();
    }
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`,
    close() {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
};

/** Opens a connection for `client`; resolves once the server's `hub.subscribe()` resolved. */
async function open(
  m: Model,
  r: Real,
  client: number,
  topics: readonly string[],
  lastEventId: string | undefined,
  via: 'header' | 'query',
): Promise<Wire> {
  const key = `c${client}.${++r.nextConn}`;
  const query = new URLSearchParams({ topics: topics.join(','), conn: key });
  const headers: Record<string, string> = {};
  if (lastEventId !== undefined) {
    if (via === 'header') headers['last-event-id'] = lastEventId;
    else query.set('lastEventId', lastEventId);
  }
  const wire = new Wire(`${r.url}?${query}`, key, headers, lastEventId ?? '');
  r.wires[client] = wire;
  r.lastIds[client] = lastEventId ?? '';
  const res = await wire.response;
  if (res.statusCode !== 200) fail(m, `${key}: status ${res.statusCode}`);
  await until(m, () => r.subscribed.has(key), `${key}: the server subscribed the stream`);
  await r.subscribed.get(key);
  return wire;
}

const realPerformance = globalThis.performance;

async function until(m: Model, condition: () => boolean, what: string): Promise<void> {
  // performance.now(), not Date.now(): Date may be frozen (ttl runs).
  const deadline = realPerformance.now() + m.config.settleTimeout;
  while (!condition()) {
    if (realPerformance.now() > deadline) fail(m, `timed out waiting for: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * Waits until everything that should have reached the clients has: the backplane delivered every
 * message, the hub's turn flushed, and a sync comment written to every open stream came back to its
 * client (a stream is ordered, so everything written before it has arrived too).
 */
async function settle(m: Model, r: Real): Promise<void> {
  await until(m, () => r.hub.stats().delivered >= m.published.length, 'the backplane delivered every message');
  await turn();
  // A stream's own writes (the sync comment below) may go out ahead of what the hub still owes a
  // subscriber that is behind: wait for the hub to have written everything first.
  await until(m, () => r.hub.stats().behind === 0, 'every subscriber behind to be caught up');
  const tag = `sync ${++r.syncs}`;
  const waiting: Wire[] = [];
  for (let client = 0; client < m.clients.length; client++) {
    const conn = m.clients[client]?.conn;
    const wire = r.wires[client];
    if (conn === undefined || wire === undefined) continue;
    const stream = r.streams.get(conn.key);
    if (stream === undefined) fail(m, `${conn.key}: the server closed a stream the model holds open`);
    stream.comment(tag);
    waiting.push(wire);
  }
  for (const wire of waiting) {
    await until(m, () => wire.hasComment(tag) || wire.ended, `${wire.key} to read "${tag}"`);
    if (!wire.hasComment(tag)) fail(m, `${wire.key}: the connection ended`);
  }
}

/** Compares everything observable with the model. */
function verify(m: Model, r: Real): void {
  if (r.errors.length > 0) fail(m, `the hub reported: ${r.errors.map(String).join('; ')}`);
  const topics: Record<string, number> = {};
  let streams = 0;
  for (let client = 0; client < m.clients.length; client++) {
    const state = m.clients[client] as ClientModel;
    const conn = state.conn;
    const wire = r.wires[client];
    if (conn !== undefined && wire !== undefined) {
      if (!isDeepStrictEqual(wire.events, conn.expected)) {
        fail(
          m,
          `${conn.key} (topics ${[...conn.topics]}) received\n${show(wire.events)}\nexpected\n${show(conn.expected)}`,
        );
      }
      if (wire.lastEventId !== state.lastId) {
        fail(m, `${conn.key}: holds last event id "${wire.lastEventId}", expected "${state.lastId}"`);
      }
      if (conn.inHub) {
        streams++;
        for (const topic of conn.topics) topics[topic] = (topics[topic] ?? 0) + 1;
      }
    } else if (r.lastIds[client] !== state.lastId) {
      fail(m, `client ${client}: holds last event id "${r.lastIds[client]}", expected "${state.lastId}"`);
    }
  }
  const stats = r.hub.stats();
  const expected = {
    streams,
    topics,
    published: m.published.length,
    delivered: m.published.length,
    frames: m.frames,
    replays: m.replays,
    gaps: m.gaps,
  };
  const actual = {
    streams: stats.streams,
    topics: stats.topics,
    published: stats.published,
    delivered: stats.delivered,
    frames: stats.frames,
    replays: stats.replays,
    gaps: stats.gaps,
  };
  if (!isDeepStrictEqual(actual, expected)) {
    fail(m, `hub.stats() ${JSON.stringify(actual)}, expected ${JSON.stringify(expected)}`);
  }
}

function show(events: readonly ParsedEvent[]): string {
  return events.length === 0 ? '  (none)' : events.map((e) => `  ${e.lastEventId} ${e.type} ${e.data}`).join('\n');
}

let dataCounter = 0;

/** Publishes and records the message; live connections of its topics expect it. Does not settle. */
async function publish(
  m: Model,
  r: Real,
  topics: readonly string[],
  event: string | undefined,
  pad = 0,
): Promise<void> {
  const data = `m${++dataCounter} ${topics.join('+')}${pad > 0 ? ` ${'x'.repeat(pad)}` : ''}`;
  const id = await r.hub.publish(topics, data, event === undefined ? {} : { event });
  const seq = m.published.length + 1;
  if (m.seqOf.has(id) || id === m.initialPosition) fail(m, `publish returned id ${id} twice`);
  const message: Published = { seq, id, topics, event, data };
  m.published.push(message);
  m.seqOf.set(id, seq);
  m.log.push(`publish #${seq} ${id} [${topics}]${event ? ` event ${event}` : ''}`);
  for (const state of m.clients) {
    const conn = state.conn;
    if (conn === undefined || !conn.inHub || !topics.some((t) => conn.topics.has(t))) continue;
    conn.expected.push(toEvent(message));
    state.lastId = id;
    m.frames++;
  }
}

async function publishAndCheck(m: Model, r: Real, topics: readonly string[], event: string | undefined) {
  await publish(m, r, topics, event);
  await settle(m, r);
  verify(m, r);
}

/**
 * After a resume settled: decides, from what the client read, which outcome the hub chose and checks
 * that the model allows it. `lo`..`hi` are the positions between which the hub took its cut-off (equal
 * unless publishes raced the subscription).
 */
function resolveResume(m: Model, r: Real, client: number, requested: string, lo: number, hi: number): void {
  const state = m.clients[client] as ClientModel;
  const conn = state.conn as ConnModel;
  const wire = r.wires[client] as Wire;
  const after = positionOf(m, requested);
  const first = wire.events[0];
  if (first?.type === m.config.gapEvent) {
    const cut = positionOf(m, first.lastEventId);
    if (cut === undefined || cut < lo || cut > hi) {
      fail(m, `${conn.key}: gap event id "${first.lastEventId}" is not the position at subscribe (#${lo}..#${hi})`);
    }
    if (after !== undefined && !mayGap(m, after, conn.topics, hi)) {
      fail(
        m,
        `${conn.key}: gap after ${requested} (#${after}) although history holds all of [${[...conn.topics]}] since`,
      );
    }
    let oldest: string | null;
    const strict = lo === hi && m.config.historySlack === 0;
    if (strict) {
      const gone = evicted(m, hi).possibly;
      oldest = gone < hi ? (positionId(m, gone + 1) as string) : null;
    } else {
      // The cut-off (and, for async backplanes, when history was read) is not known exactly.
      const data = safeJson(first.data) as { oldestId?: unknown } | undefined;
      const claimed = data?.oldestId;
      oldest = typeof claimed === 'string' && m.seqOf.has(claimed) ? claimed : null;
    }
    const gap: ParsedEvent = {
      type: m.config.gapEvent,
      data: JSON.stringify({ lastEventId: requested, oldestId: oldest }),
      lastEventId: first.lastEventId,
    };
    conn.expected = [gap, ...matching(m, cut, hi, conn.topics)];
    state.lastId = (conn.expected.at(-1) as ParsedEvent).lastEventId;
    m.frames += conn.expected.length - 1;
    m.gaps++;
    m.log.push(`  ${conn.key}: gap (cut #${cut}), then ${conn.expected.length - 1} live`);
    return;
  }
  if (after === undefined) fail(m, `${conn.key}: no gap event for "${requested}", an id this hub never issued`);
  if (mustGap(m, after, conn.topics, lo)) {
    fail(m, `${conn.key}: no gap event although history lost a message of [${[...conn.topics]}] after #${after}`);
  }
  conn.expected = matching(m, after, hi, conn.topics);
  state.lastId = conn.expected.at(-1)?.lastEventId ?? requested;
  m.frames += conn.expected.length;
  m.replays++;
  m.log.push(`  ${conn.key}: replay of ${conn.expected.length} after #${after}`);
}

/** After a new (non-resuming) connection settled: the id-only frame tells where the hub cut. */
function resolveFresh(m: Model, r: Real, client: number, lo: number, hi: number): void {
  const state = m.clients[client] as ClientModel;
  const conn = state.conn as ConnModel;
  const wire = r.wires[client] as Wire;
  const frame = /^id: ([^\n]*)\n\n/.exec(wire.raw);
  let cut: number;
  if (frame) {
    const at = positionOf(m, frame[1] as string);
    if (at === undefined || at < lo || at > hi) {
      fail(m, `${conn.key}: id-only frame "${frame[1]}" is not the position at subscribe (#${lo}..#${hi})`);
    }
    cut = at;
  } else {
    // Without a position (nothing delivered yet) there is no id-only frame.
    if (positionId(m, lo) !== undefined) fail(m, `${conn.key}: a new stream got no id-only frame`);
    cut = lo;
  }
  conn.expected = matching(m, cut, hi, conn.topics);
  state.lastId = conn.expected.at(-1)?.lastEventId ?? positionId(m, cut) ?? '';
  m.frames += conn.expected.length;
  m.log.push(`  ${conn.key}: new at #${cut}, then ${conn.expected.length} live`);
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function withLog(error: unknown, log: readonly string[]): unknown {
  if (error instanceof Error && !error.message.includes('--- model log ---')) {
    error.message += `\n--- model log ---\n${log.join('\n')}`;
  }
  return error;
}

// ---------------------------------------------------------------------------------------------------
// Commands

type Cmd = fc.AsyncCommand<Model, Real> & { readonly kind: CommandKind };

function begin(m: Model, command: Cmd, detail: string): void {
  m.executed.push(command.kind);
  m.log.push(`${command}${detail}`);
}
type Pace = 0 | 1 | 2;

/** Lets other work run between racing publishes: not at all, one turn, or a timer. */
async function pace(p: Pace): Promise<void> {
  if (p === 1) await turn();
  else if (p === 2) await new Promise((resolve) => setTimeout(resolve, 1));
}

/** Publishes one to three messages back to back (more eviction pressure per command), then checks. */
class PublishCommand implements Cmd {
  readonly kind: CommandKind = 'publish';
  constructor(readonly messages: readonly (readonly [readonly string[], string | undefined])[]) {}
  check(): boolean {
    return true;
  }
  async run(m: Model, r: Real): Promise<void> {
    m.executed.push(this.kind);
    for (const [topics, event] of this.messages) await publish(m, r, topics, event);
    await settle(m, r);
    verify(m, r);
  }
  toString(): string {
    return `publish(${this.messages.map(([t, e]) => `[${t}]${e ? `:${e}` : ''}`).join(' ')})`;
  }
}

class ConnectCommand implements Cmd {
  readonly kind: CommandKind = 'connect';
  constructor(
    readonly client: number,
    readonly topics: readonly string[],
  ) {}
  check(): boolean {
    return true;
  }
  async run(m: Model, r: Real): Promise<void> {
    const state = m.clients[this.client] as ClientModel;
    begin(m, this, '');
    await drop(m, r, this.client);
    const p = m.published.length;
    const wire = await open(m, r, this.client, this.topics, undefined, 'header');
    state.queryTopics = this.topics;
    state.conn = newConn(wire.key, this.topics);
    await settle(m, r);
    resolveFresh(m, r, this.client, p, p);
    verify(m, r);
  }
  toString(): string {
    return `connect(${this.client}, [${this.topics}])`;
  }
}

/** Closes the client's connection, if it has one, as a vanished client would (socket destroyed). */
async function drop(m: Model, r: Real, client: number): Promise<void> {
  const state = m.clients[client] as ClientModel;
  const conn = state.conn;
  const wire = r.wires[client];
  if (conn === undefined || wire === undefined) return;
  r.lastIds[client] = wire.lastEventId;
  wire.destroy();
  r.wires[client] = undefined;
  state.conn = undefined;
  m.log.push(`  ${conn.key}: dropped`);
  await until(m, () => !r.streams.has(conn.key), `the server to see ${conn.key} close`);
}

class DisconnectCommand implements Cmd {
  readonly kind: CommandKind = 'disconnect';
  constructor(readonly client: number) {}
  check(m: Readonly<Model>): boolean {
    return m.clients[this.client]?.conn !== undefined;
  }
  async run(m: Model, r: Real): Promise<void> {
    begin(m, this, '');
    await drop(m, r, this.client);
    await settle(m, r);
    verify(m, r);
  }
  toString(): string {
    return `disconnect(${this.client})`;
  }
}

class ReconnectCommand implements Cmd {
  readonly kind: CommandKind = 'reconnect';
  constructor(
    readonly client: number,
    readonly topics: readonly string[] | null,
    readonly via: 'header' | 'query',
  ) {}
  check(m: Readonly<Model>): boolean {
    return (m.clients[this.client]?.queryTopics.length ?? 0) > 0 || this.topics !== null;
  }
  async run(m: Model, r: Real): Promise<void> {
    const state = m.clients[this.client] as ClientModel;
    const topics = this.topics ?? state.queryTopics;
    await drop(m, r, this.client);
    // Like EventSource: with no id yet, the reconnection is a plain new connection.
    const requested = r.lastIds[this.client] || undefined;
    const p = m.published.length;
    begin(m, this, ` from ${requested ?? '(no id)'} [${topics}]`);
    const wire = await open(m, r, this.client, topics, requested, this.via);
    state.queryTopics = topics;
    state.conn = newConn(wire.key, topics);
    await settle(m, r);
    if (requested === undefined) resolveFresh(m, r, this.client, p, p);
    else resolveResume(m, r, this.client, requested, p, p);
    verify(m, r);
  }
  toString(): string {
    return `reconnect(${this.client}, ${this.topics ? `[${this.topics}]` : 'same topics'}, ${this.via})`;
  }
}

class ReconnectUnknownCommand implements Cmd {
  readonly kind: CommandKind = 'reconnectUnknown';
  constructor(
    readonly client: number,
    readonly topics: readonly string[],
    readonly id: string,
  ) {}
  check(): boolean {
    return true;
  }
  async run(m: Model, r: Real): Promise<void> {
    const state = m.clients[this.client] as ClientModel;
    begin(m, this, '');
    await drop(m, r, this.client);
    const p = m.published.length;
    const wire = await open(m, r, this.client, this.topics, this.id, 'header');
    state.queryTopics = this.topics;
    state.lastId = this.id;
    state.conn = newConn(wire.key, this.topics);
    await settle(m, r);
    resolveResume(m, r, this.client, this.id, p, p);
    verify(m, r);
  }
  toString(): string {
    return `reconnectUnknown(${this.client}, [${this.topics}], ${JSON.stringify(this.id)})`;
  }
}

/**
 * The client goes away (socket destroyed) while messages are published — and, with a ttl, while
 * time passes — then comes back with its last event id: a replay or a gap, as history allows.
 */
class AwayCommand implements Cmd {
  readonly kind: CommandKind = 'away';
  constructor(
    readonly client: number,
    readonly messages: readonly (readonly string[])[],
    readonly timePasses: boolean,
    readonly via: 'header' | 'query',
  ) {}
  check(m: Readonly<Model>): boolean {
    const state = m.clients[this.client];
    return state?.conn !== undefined && state.lastId !== '';
  }
  async run(m: Model, r: Real): Promise<void> {
    const state = m.clients[this.client] as ClientModel;
    begin(m, this, '');
    await drop(m, r, this.client);
    for (const topics of this.messages) await publish(m, r, topics, undefined);
    if (this.timePasses && m.config.ttl !== undefined) advanceTime(m);
    const requested = r.lastIds[this.client] as string;
    // With asynchronous delivery the hub's position may still lag behind what was published: the
    // cut-off is then anywhere from what it delivered so far to the last message.
    const lo = r.hub.stats().delivered;
    const wire = await open(m, r, this.client, state.queryTopics, requested, this.via);
    const hi = m.published.length;
    state.conn = newConn(wire.key, state.queryTopics);
    await settle(m, r);
    resolveResume(m, r, this.client, requested, lo, hi);
    verify(m, r);
  }
  toString(): string {
    return `away(${this.client}, ${this.messages.map((t) => `[${t}]`).join(' ')}${this.timePasses ? ', time passes' : ''}, ${this.via})`;
  }
}

/** A (re)connection while publishes race its subscription: the race-free handoff. */
class RacingConnectCommand implements Cmd {
  readonly kind: CommandKind;
  constructor(
    readonly client: number,
    readonly resume: boolean,
    readonly topics: readonly string[],
    readonly publishes: readonly (readonly [readonly string[], Pace])[],
  ) {
    this.kind = resume ? 'reconnectDuringPublishes' : 'connectDuringPublishes';
  }
  check(m: Readonly<Model>): boolean {
    // A reconnection without an id is a new connection: that race is connectDuringPublishes.
    return !this.resume || m.clients[this.client]?.lastId !== '';
  }
  async run(m: Model, r: Real): Promise<void> {
    const state = m.clients[this.client] as ClientModel;
    await drop(m, r, this.client);
    const requested = this.resume ? r.lastIds[this.client] : undefined;
    const lo = m.published.length;
    begin(m, this, `${requested === undefined ? '' : ` from ${requested}`}`);
    const opening = open(m, r, this.client, this.topics, requested, 'header');
    opening.catch(() => {});
    for (const [topics, p] of this.publishes) {
      await publish(m, r, topics, undefined);
      await pace(p);
    }
    const wire = await opening;
    const hi = m.published.length;
    state.queryTopics = this.topics;
    state.conn = newConn(wire.key, this.topics);
    await settle(m, r);
    if (requested === undefined) resolveFresh(m, r, this.client, lo, hi);
    else resolveResume(m, r, this.client, requested, lo, hi);
    verify(m, r);
  }
  toString(): string {
    const pubs = this.publishes.map(([t, p]) => `[${t}]${'.'.repeat(p)}`).join(' ');
    return `${this.resume ? 'reconnect' : 'connect'}DuringPublishes(${this.client}, [${this.topics}], ${pubs})`;
  }
}

/**
 * Adds a topic to an open stream. When every topic had been removed (the stream left the hub but
 * stayed open), this is a "rejoin" — what an app moving a stream between rooms does.
 */
class AddTopicCommand implements Cmd {
  kind: CommandKind = 'addTopic';
  constructor(
    readonly client: number,
    readonly topic: string,
  ) {}
  check(m: Readonly<Model>): boolean {
    const conn = m.clients[this.client]?.conn;
    if (conn === undefined || conn.topics.has(this.topic)) return false;
    return conn.inHub || !m.config.exclude.has('rejoin');
  }
  async run(m: Model, r: Real): Promise<void> {
    const state = m.clients[this.client] as ClientModel;
    const conn = state.conn as ConnModel;
    const stream = r.streams.get(conn.key);
    if (stream === undefined) fail(m, `${conn.key}: the server closed a stream the model holds open`);
    const rejoin = !conn.inHub;
    this.kind = rejoin ? 'rejoin' : 'addTopic';
    begin(m, this, rejoin ? ' (the stream had left the hub: rejoin)' : '');
    const before = state.lastId;
    await r.hub.subscribe(stream, this.topic);
    conn.topics.add(this.topic);
    conn.inHub = true;
    await settle(m, r);
    if (rejoin) {
      // A stream that left the hub and comes back already has everything up to when it left: it must
      // get no replay of it (nor count as a resume). Being told the current position is fine.
      const now = (r.wires[this.client] as Wire).lastEventId;
      if (now !== before && now === positionId(m, m.published.length)) state.lastId = now;
    }
    verify(m, r);
  }
  toString(): string {
    return `addTopic(${this.client}, ${this.topic})`;
  }
}

class RemoveTopicCommand implements Cmd {
  readonly kind: CommandKind = 'removeTopic';
  constructor(
    readonly client: number,
    readonly topic: string,
  ) {}
  check(m: Readonly<Model>): boolean {
    const conn = m.clients[this.client]?.conn;
    return conn?.topics.has(this.topic) === true;
  }
  async run(m: Model, r: Real): Promise<void> {
    const state = m.clients[this.client] as ClientModel;
    const conn = state.conn as ConnModel;
    const stream = r.streams.get(conn.key);
    if (stream === undefined) fail(m, `${conn.key}: the server closed a stream the model holds open`);
    begin(m, this, '');
    r.hub.unsubscribe(stream, this.topic);
    conn.topics.delete(this.topic);
    if (conn.topics.size === 0) conn.inHub = false;
    await settle(m, r);
    verify(m, r);
  }
  toString(): string {
    return `removeTopic(${this.client}, ${this.topic})`;
  }
}

/** Bytes of each message a stall publishes: a few of them fill a loopback connection's buffers. */
const STALL_PAD = 400_000;

/**
 * A client stops reading while big messages go out to its topics (its socket fills and the hub's
 * writes to it back up: it falls behind, a position in the hub's log), then reads again: it must
 * get exactly what it missed, in order, with every other client unaffected. With a small
 * `maxBufferedBytes` the hub cuts it instead: its connection ends after an exact prefix.
 */
class StallCommand implements Cmd {
  readonly kind: CommandKind = 'stall';
  constructor(
    readonly client: number,
    readonly count: number,
  ) {}
  check(m: Readonly<Model>): boolean {
    const conn = m.clients[this.client]?.conn;
    return conn?.inHub === true && conn.topics.size > 0;
  }
  async run(m: Model, r: Real): Promise<void> {
    const state = m.clients[this.client] as ClientModel;
    const conn = state.conn as ConnModel;
    const wire = r.wires[this.client] as Wire;
    begin(m, this, '');
    wire.pause();
    for (let i = 0; i < this.count; i++) await publish(m, r, [...conn.topics], undefined, STALL_PAD);
    await until(m, () => r.hub.stats().delivered >= m.published.length, 'the backplane delivered every message');
    await turn();
    await new Promise((resolve) => setTimeout(resolve, 20));
    const stats = r.hub.stats();
    m.log.push(`  stalled: behind ${stats.behind}, buffered ${stats.bufferedBytes} B, cut ${stats.cut}`);
    wire.resume();
    // Past the budget the hub cuts the readers furthest behind: the stalled one first, then any other
    // that the burst left behind. Each gets what it had been sent, then the end.
    for (let client = 0; client < m.clients.length; client++) {
      const other = m.clients[client] as ClientModel;
      const otherConn = other.conn;
      const otherWire = r.wires[client];
      if (otherConn === undefined || otherWire === undefined || r.streams.has(otherConn.key)) continue;
      await until(m, () => otherWire.ended, `${otherConn.key} to end after the cut`);
      const got = otherWire.events;
      if (!isDeepStrictEqual(got, otherConn.expected.slice(0, got.length))) {
        fail(m, `${otherConn.key} (cut) received\n${show(got)}\nwhich is not a prefix of\n${show(otherConn.expected)}`);
      }
      m.frames -= otherConn.expected.length - got.length;
      other.lastId = otherWire.lastEventId;
      r.lastIds[client] = otherWire.lastEventId;
      r.wires[client] = undefined;
      other.conn = undefined;
      m.log.push(`  ${otherConn.key}: cut after ${got.length} of ${otherConn.expected.length} events`);
    }
    await settle(m, r);
    verify(m, r);
  }
  toString(): string {
    return `stall(${this.client}, ${this.count})`;
  }
}

class TimePassesCommand implements Cmd {
  readonly kind: CommandKind = 'timePasses';
  check(m: Readonly<Model>): boolean {
    return m.config.ttl !== undefined;
  }
  async run(m: Model, r: Real): Promise<void> {
    m.executed.push(this.kind);
    advanceTime(m);
    await settle(m, r);
    verify(m, r);
  }
  toString(): string {
    return 'timePasses()';
  }
}

/** Moves the frozen clock past the ttl: everything published so far ages out of history. */
function advanceTime(m: Model): void {
  vi.setSystemTime(Date.now() + (m.config.ttl as number) + 1);
  m.expiredUpTo = m.published.length;
  m.log.push(`  time passes: #1..#${m.expiredUpTo} aged out`);
}

function newConn(key: string, topics: readonly string[]): ConnModel {
  return { key, topics: new Set(topics), inHub: true, expected: [] };
}

function commandArbitraries(config: Config): fc.Arbitrary<Cmd>[] {
  const client = fc.nat({ max: config.clients - 1 });
  const topic = fc.constantFrom(...config.topics);
  const topicSet = fc.subarray([...config.topics], { minLength: 1 });
  const pace = fc.constantFrom<Pace>(0, 1, 2);
  const racing = fc.array(fc.tuple(topicSet, pace), { minLength: 1, maxLength: 6 });
  const kinds: [CommandKind, fc.Arbitrary<Cmd>, number][] = [
    [
      'publish',
      fc
        .array(fc.tuple(topicSet, fc.option(fc.constant('tick'), { freq: 4 })), { minLength: 1, maxLength: 3 })
        .map((messages) => new PublishCommand(messages.map(([t, e]) => [t, e ?? undefined] as const))),
      6,
    ],
    ['connect', fc.tuple(client, topicSet).map(([c, t]) => new ConnectCommand(c, t)), 3],
    ['disconnect', client.map((c) => new DisconnectCommand(c)), 3],
    [
      'reconnect',
      fc
        .tuple(client, fc.option(topicSet, { freq: 3 }), fc.constantFrom<'header' | 'query'>('header', 'query'))
        .map(([c, t, v]) => new ReconnectCommand(c, t, v)),
      4,
    ],
    [
      'reconnectUnknown',
      fc
        .tuple(client, topicSet, fc.constantFrom('bogus', 'never-issued-by-this-hub'))
        .map(([c, t, id]) => new ReconnectUnknownCommand(c, t, id)),
      1,
    ],
    [
      'away',
      fc
        .tuple(
          client,
          fc.array(topicSet, { maxLength: 8 }),
          fc.boolean(),
          fc.constantFrom<'header' | 'query'>('header', 'query'),
        )
        .map(([c, messages, time, via]) => new AwayCommand(c, messages, time, via)),
      3,
    ],
    [
      'reconnectDuringPublishes',
      fc.tuple(client, topicSet, racing).map(([c, t, p]) => new RacingConnectCommand(c, true, t, p)),
      2,
    ],
    [
      'connectDuringPublishes',
      fc.tuple(client, topicSet, racing).map(([c, t, p]) => new RacingConnectCommand(c, false, t, p)),
      1,
    ],
    ['addTopic', fc.tuple(client, topic).map(([c, t]) => new AddTopicCommand(c, t)), 2],
    ['removeTopic', fc.tuple(client, topic).map(([c, t]) => new RemoveTopicCommand(c, t)), 2],
    ['timePasses', fc.constant(new TimePassesCommand()), config.ttl === undefined ? 0 : 1],
    ['stall', fc.tuple(client, fc.integer({ min: 4, max: 12 })).map(([c, n]) => new StallCommand(c, n)), 2],
  ];
  const out: fc.Arbitrary<Cmd>[] = [];
  for (const [kind, arbitrary, weight] of kinds) {
    if (config.exclude.has(kind)) continue;
    // fc.commands picks uniformly among arbitraries: repeat an arbitrary to weight it.
    for (let i = 0; i < weight; i++) out.push(arbitrary);
  }
  return out;
}
