// Starts the example exactly as the README does (node examples/express-prices/server.js, built
// packages imported by name) and checks it over the wire: the page, the JSON snapshot, the stream.
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { EventSource } from 'eventsource';
import { afterEach, beforeAll, expect, test } from 'vitest';
import { ensureBuilt } from '../../../scripts/ensure-built.js';
import { type ExampleServer, readThroughSigterm, startExample } from '../../_test/example.js';

beforeAll(() => {
  ensureBuilt(['core', 'express']);
}, 120_000);

const servers: ExampleServer[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) await server.stop('SIGKILL');
});

const script = fileURLToPath(new URL('../server.js', import.meta.url));

/** Starts the server on a free port (PORT=0) and reads the port from its `listening on …` line. */
async function start(
  env: Record<string, string> = {},
): Promise<{ url: string; child: ChildProcess; output: () => string }> {
  const server = await startExample(script, { TICK_MS: '50', ...env });
  servers.push(server);
  return { url: server.url.replace('localhost', '127.0.0.1'), child: server.process, output: server.output };
}

test('GET / is the HTML page (never an SSE response), with the hooks the page is tested by', async () => {
  const { url } = await start();
  const res = await fetch(`${url}/`, { headers: { accept: 'text/event-stream, text/html' } });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/html/);
  const html = await res.text();
  expect(html).toContain('<ul id="events">');
  expect(html).toContain('id="state"');
  expect(html).toContain('id="count"');
  expect(html).toContain("new EventSource('/prices')");
  expect(html).toContain("addEventListener('ssekit-gap'");
});

test('GET /prices: a stream of ticks with ids for EventSource, a JSON snapshot for fetch()', async () => {
  const { url } = await start();
  const es = new EventSource(`${url}/prices`);
  const ticks: { id: string; data: { symbol: string; price: number } }[] = [];
  await new Promise<void>((resolve, reject) => {
    es.onmessage = (event) => {
      ticks.push({ id: event.lastEventId, data: JSON.parse(event.data) });
      if (ticks.length === 3) resolve();
    };
    es.onerror = () => reject(new Error('EventSource failed'));
  });
  es.close();
  for (const tick of ticks) {
    expect(tick.id).toMatch(/.+/);
    expect(['ACME', 'GLOBEX', 'INITECH']).toContain(tick.data.symbol);
    expect(typeof tick.data.price).toBe('number');
  }
  expect(new Set(ticks.map((t) => t.id)).size).toBe(3);

  const json = await fetch(`${url}/prices`, { headers: { accept: 'application/json' } });
  expect(json.headers.get('content-type')).toMatch(/^application\/json/);
  const snapshot = await json.json();
  expect(Object.keys(snapshot.prices).sort()).toEqual(['ACME', 'GLOBEX', 'INITECH']);
  expect(snapshot.last.id).toMatch(/.+/);
});

test('a reconnect with Last-Event-ID gets exactly the ticks missed', async () => {
  const { url } = await start();
  const read = async (headers: Record<string, string>, count: number) => {
    const controller = new AbortController();
    const res = await fetch(`${url}/prices`, {
      headers: { accept: 'text/event-stream', ...headers },
      signal: controller.signal,
    });
    const { EventStreamParser } = await import('@ssekit/core/testing');
    const events: { id: string; data: string }[] = [];
    const parser = new EventStreamParser((e) => events.push({ id: e.lastEventId, data: e.data }));
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      parser.feed(chunk);
      if (events.length >= count) break;
    }
    controller.abort();
    return events;
  };
  const first = await read({}, 4);
  // Resume after the second tick: ticks 3 and 4 must come again, in order, then newer ones.
  const again = await read({ 'last-event-id': first[1]?.id ?? '' }, 4);
  expect(again.slice(0, 2)).toEqual(first.slice(2, 4));
});

test('SIGTERM ends every stream with a retry hint and the process exits 0', async () => {
  const { url, child } = await start();
  const { text, code } = await readThroughSigterm(`${url}/prices`, child);
  expect(text.endsWith('retry: 1000\n\n')).toBe(true);
  expect(code).toBe(0);
});
