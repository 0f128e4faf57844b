/**
 * The hub against its model, on the in-memory backplane. The runner lives in
 * hub.model.ts so that @ssekit/redis can run the same model on its backplane. `SSEKIT_MODEL_RUNS`
 * raises the run count (the stress run); a failure prints the seed (`SSEKIT_MODEL_SEED` regenerates
 * the same command lists) and the shrunk command list with the model's log.
 *
 * The model found three hub bugs (fixed); each keeps a deterministic over-the-wire reproduction
 * below, and the model runs now use every command kind:
 * - `connectDuringPublishes`: a new stream could receive an event its id-only frame already counted;
 * - `rejoin`: a stream that left the hub and subscribed again was replayed its request's history again;
 * - `reconnectUnknown` with a ttl: the gap event named an aged-out message as the oldest one held.
 */
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  type Backplane,
  type BackplaneMessage,
  createEventStream,
  createHub,
  type EventStream,
  type Hub,
  memoryBackplane,
  type ReplayResult,
} from '@ssekit/core';
import { EventStreamParser, type ParsedStream } from '@ssekit/core/testing';
import { afterEach, describe, expect, test } from 'vitest';
import { type HubModelSummary, modelRuns, runHubModel } from './hub.model.js';

const runs = modelRuns(30);
// Generous: each run is a real server and real sockets, and the stress run multiplies the runs.
const timeout = 60_000 + runs * 2_000;

function report(name: string, summary: HubModelSummary): void {
  const commands = Object.entries(summary.commands)
    .filter(([, n]) => n > 0)
    .map(([kind, n]) => `${kind} ${n}`)
    .join(', ');
  console.log(
    `[hub model] ${name}: ${summary.runs} runs, ${summary.published} published, ${summary.events} events checked, ` +
      `${summary.replays} replays, ${summary.gaps} gaps; commands: ${commands}`,
  );
}

describe('hub model (in-memory backplane)', () => {
  test('history of 6: resume, gaps, races and topic changes match the model', { timeout }, async () => {
    const summary = await runHubModel({ historySize: 6, runs });
    report('history 6', summary);
    // Not vacuous: the runs resumed from history, hit gaps, raced publishes against resumes.
    expect(summary.runs).toBe(runs);
    expect(summary.replays).toBeGreaterThan(0);
    expect(summary.gaps).toBeGreaterThan(0);
    expect(summary.commands.reconnectDuringPublishes).toBeGreaterThan(0);
    expect(summary.commands.reconnect).toBeGreaterThan(0);
  });

  test('history of 4 with a ttl: ageing out is a gap exactly when the model says so', { timeout }, async () => {
    const summary = await runHubModel({
      historySize: 4,
      ttl: 1000,
      runs,
    });
    report('history 4, ttl', summary);
    expect(summary.commands.timePasses).toBeGreaterThan(0);
    expect(summary.gaps).toBeGreaterThan(0);
  });

  test('stalled readers are a position in the log: they get exactly what they missed once they read', {
    timeout,
  }, async () => {
    const summary = await runHubModel({ historySize: 6, runs });
    report('stalls', summary);
    expect(summary.commands.stall).toBeGreaterThan(0);
  });

  test('past maxBufferedBytes the hub cuts the reader furthest behind: it got an exact prefix', {
    timeout,
  }, async () => {
    const summary = await runHubModel({ historySize: 6, runs, maxBufferedBytes: 1_500_000 });
    report('stalls with a budget', summary);
    expect(summary.commands.stall).toBeGreaterThan(0);
    expect(summary.cut).toBeGreaterThan(0);
  });

  test('no history: any missed message of the topics is a gap, nothing missed is none', { timeout }, async () => {
    const summary = await runHubModel({ historySize: 0, runs: Math.ceil(runs / 2) });
    report('no history', summary);
    expect(summary.gaps).toBeGreaterThan(0);
    expect(summary.replays).toBeGreaterThan(0);
  });
});

// ---------------------------------------------------------------------------------------------------
// The runner itself: it drives a backplane given from outside (what @ssekit/redis does), copes with
// asynchronous delivery and replay, and fails on a backplane that loses or hides something.

/**
 * The in-memory backplane made asynchronous the way a remote one is: messages reach listeners a few
 * ms after publish() resolved (in order), `position` follows what was delivered, and replay() answers
 * later and honours `upTo`.
 */
function asyncBackplane(size: number, tamper?: (result: ReplayResult) => ReplayResult): Backplane {
  const inner = memoryBackplane({ size });
  const listeners = new Set<(message: BackplaneMessage) => void>();
  const backlog: BackplaneMessage[] = [];
  let position: string | undefined = inner.position;
  let timer: NodeJS.Timeout | undefined;
  const deliver = (): void => {
    timer = undefined;
    const message = backlog.shift();
    if (message === undefined) return;
    position = message.id;
    for (const listener of listeners) listener(message);
    if (backlog.length > 0) timer = setTimeout(deliver, Math.random() * 3);
  };
  const unlisten = inner.subscribe((message) => {
    backlog.push(message);
    timer ??= setTimeout(deliver, Math.random() * 3);
  });
  return {
    publish: (request) => inner.publish(request),
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    get position() {
      return position;
    },
    async replay(afterId, topics, upTo) {
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 3));
      let result = await inner.replay(afterId, topics, upTo);
      // The inner backplane answers up to its newest message; the contract is up to `upTo`.
      if (!result.gap) result = { gap: false, messages: result.messages.filter((m) => seqOf(m.id) <= seqOf(upTo)) };
      return tamper ? tamper(result) : result;
    },
    async close() {
      unlisten();
      clearTimeout(timer);
      await inner.close();
    },
  };
}

/** The sequence number of an in-memory id (`<epoch>-<seq>`); 0 for none. */
function seqOf(id: string | undefined): number {
  return id === undefined ? 0 : Number(id.slice(id.lastIndexOf('-') + 1));
}

describe('the model runner', () => {
  test('passes a backplane given from outside whose delivery and replay are asynchronous', { timeout }, async () => {
    const summary = await runHubModel({
      makeBackplane: () => asyncBackplane(6),
      historySize: 6,
      runs,
    });
    report('async backplane', summary);
    expect(summary.replays).toBeGreaterThan(0);
    expect(summary.gaps).toBeGreaterThan(0);
  });

  test('fails on a backplane whose replay loses the last message', { timeout }, async () => {
    const lossy = () =>
      asyncBackplane(6, (result) => (result.gap ? result : { gap: false, messages: result.messages.slice(0, -1) }));
    // A fixed seed: the same command lists every time, so the runs surely include a replay.
    await expect(runHubModel({ makeBackplane: lossy, historySize: 6, runs: 30, seed: 1 })).rejects.toThrow(
      /received[\s\S]*expected/,
    );
  });

  test('fails on a backplane that never reports a gap', { timeout }, async () => {
    const hiding = () => asyncBackplane(6, (result) => (result.gap ? { gap: false, messages: [] } : result));
    await expect(runHubModel({ makeBackplane: hiding, historySize: 6, runs: 30, seed: 1 })).rejects.toThrow(
      /no gap event/,
    );
  });
});

// ---------------------------------------------------------------------------------------------------
// Deterministic reproductions of what the model found.

interface Served {
  hub: Hub;
  url: string;
  streams: EventStream[];
  close(): Promise<void>;
}

const served: Served[] = [];
afterEach(async () => {
  await Promise.all(served.splice(0).map((s) => s.close()));
});

async function serve(hub: Hub, onStream: (stream: EventStream, url: URL) => void): Promise<Served> {
  const streams: EventStream[] = [];
  const server = http.createServer((req, res) => {
    const stream = createEventStream(req, res, { keepalive: false });
    streams.push(stream);
    onStream(stream, new URL(req.url ?? '/', 'http://x'));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const s: Served = {
    hub,
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`,
    streams,
    async close() {
      await hub.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  served.push(s);
  return s;
}

interface Reader {
  result: ParsedStream;
  until(condition: (result: ParsedStream) => boolean): Promise<void>;
  close(): void;
}

async function read(url: string, headers: Record<string, string> = {}): Promise<Reader> {
  const parser = new EventStreamParser();
  const request = http.get(url, { agent: false, headers: { accept: 'text/event-stream', ...headers } });
  const [res] = (await once(request, 'response')) as [http.IncomingMessage];
  res.on('data', (chunk: Buffer) => parser.feed(chunk));
  res.on('error', () => {});
  return {
    result: parser.result,
    async until(condition) {
      const deadline = performance.now() + 3000;
      while (!condition(parser.result)) {
        if (performance.now() > deadline) throw new Error(`condition not met; read ${JSON.stringify(parser.result)}`);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    },
    close: () => request.destroy(),
  };
}

describe('found by the model', () => {
  // Guards against (hub.ts, subscribe without a last event id): the id-only frame is the backplane's position,
  // which already counts messages delivered this turn but not yet flushed; the flush then writes
  // them to the new stream too. So a client is told "you are at X" and then receives X (or older).
  // Happens whenever a publish (e.g. from a timer) and a new connection fall in the same turn.
  test('a new stream receives no event its id-only frame already counted', async () => {
    const hub = createHub();
    const { url } = await serve(hub, (stream) => {
      // A publish in the same turn as the subscription, before it.
      void hub.publish('a', 'before');
      void hub.subscribe(stream, 'a');
    });
    const client = await read(url);
    await client.until((r) => r.lastEventId !== '');
    await hub.publish('a', 'after');
    await client.until((r) => r.events.some((e) => e.data === 'after'));
    client.close();
    // 'before' is at or before the position the client was given: it must not arrive.
    expect(client.result.events.map((e) => e.data)).toEqual(['after']);
  });

  // Guards against (hub.ts, subscribe): a stream that left the hub (unsubscribe of all its topics — e.g. an app
  // moving it to another room) is treated as new when subscribed again, so the hub resumes from the
  // request's Last-Event-ID once more and replays what the stream already received: duplicates.
  test('moving a resumed stream to other topics replays nothing it already received', async () => {
    const hub = createHub();
    const origin = await hub.publish('a', 'seen before the reconnect');
    const { url, streams } = await serve(hub, (stream) => void hub.subscribe(stream, 'a'));
    const client = await read(url, { 'last-event-id': origin });
    await hub.publish('a', 'x');
    await client.until((r) => r.events.length === 1);
    const stream = streams[0] as EventStream;
    hub.unsubscribe(stream);
    await hub.subscribe(stream, ['a', 'b']);
    await hub.publish('b', 'y');
    await client.until((r) => r.events.some((e) => e.data === 'y'));
    client.close();
    expect(client.result.events.map((e) => e.data)).toEqual(['x', 'y']);
    expect(hub.stats().replays).toBe(1);
  });

  // Guards against (backplane.ts/history.ts): for an id the hub never issued, MemoryBackplane.replay() reads
  // `history.oldest()` without expiring aged-out messages first (only push() and after() expire), so
  // the gap event names a message history no longer holds as the oldest one held.
  test('the gap event never names an aged-out message as the oldest held', async () => {
    const hub = createHub({ history: { size: 5, ttl: 30 } });
    await hub.publish('a', 'ages out');
    await new Promise((resolve) => setTimeout(resolve, 100));
    const { url } = await serve(hub, (stream) => void hub.subscribe(stream, 'a'));
    const client = await read(url, { 'last-event-id': 'never-issued' });
    await client.until((r) => r.events.length === 1);
    client.close();
    const gap = client.result.events[0];
    expect(gap?.type).toBe('ssekit-gap');
    expect(JSON.parse(gap?.data ?? '{}')).toEqual({ lastEventId: 'never-issued', oldestId: null });
  });
});
