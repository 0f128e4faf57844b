// Starts the example as the README does (node examples/hono/server.js, built packages imported by
// name) and checks it over the wire: the page, the stream, resume, shutdown, a taken port.
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeAll, expect, test } from 'vitest';
import { connect } from '../../../packages/core/test/support/clients.js';
import { ensureBuilt } from '../../../scripts/ensure-built.js';
import { type ExampleServer, readThroughSigterm, startExample } from '../../_test/example.js';

beforeAll(() => {
  ensureBuilt(['core', 'web']);
}, 120_000);

const servers: ExampleServer[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) await server.stop('SIGKILL');
});

const script = fileURLToPath(new URL('../server.js', import.meta.url));

async function start(env: Record<string, string> = {}): Promise<ExampleServer & { base: string }> {
  const server = await startExample(script, { TICK_MS: '50', ...env });
  servers.push(server);
  return { ...server, base: server.url.replace('localhost', '127.0.0.1') };
}

/** Reads `count` events from GET /events with `headers` (the shared streaming client), then leaves. */
async function read(base: string, headers: Record<string, string>, count: number) {
  const client = await connect(`${base}/events`, headers);
  expect(client.status).toBe(200);
  expect(client.headers.get('content-type')).toMatch(/^text\/event-stream/);
  const events = await client.waitFor(count);
  client.close();
  return events.map((e) => ({ id: e.lastEventId, data: e.data }));
}

test('GET / is the HTML page (never an SSE response), with the hooks the page is tested by', async () => {
  const { base } = await start();
  const res = await fetch(`${base}/`, { headers: { accept: 'text/event-stream, text/html' } });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/html/);
  const html = await res.text();
  expect(html).toContain('<ul id="events">');
  expect(html).toContain('id="state"');
  expect(html).toContain("new EventSource('/events')");
  expect(html).toContain("addEventListener('ssekit-gap'");
});

test('GET /events: ticks with ids in order; a reconnect with Last-Event-ID gets exactly the ticks missed', async () => {
  const { base } = await start();
  const first = await read(base, {}, 4);
  const ns = first.map((e) => JSON.parse(e.data).n as number);
  expect(ns).toEqual([ns[0], (ns[0] as number) + 1, (ns[0] as number) + 2, (ns[0] as number) + 3]);
  expect(new Set(first.map((e) => e.id)).size).toBe(4);
  // Resume after the second tick: ticks 3 and 4 must come again, in order, then newer ones.
  const again = await read(base, { 'last-event-id': first[1]?.id ?? '' }, 4);
  expect(again.slice(0, 2)).toEqual(first.slice(2, 4));
});

test('SIGTERM ends every stream with a retry hint and the process exits 0', async () => {
  const { base, process: child } = await start();
  const { text, code } = await readThroughSigterm(`${base}/events`, child);
  expect(text.endsWith('retry: 1000\n\n')).toBe(true);
  expect(code).toBe(0);
});

test('a port already in use: one clear line on stderr and exit code 1', async () => {
  const { port } = await start();
  const { spawn } = await import('node:child_process');
  const child = spawn(process.execPath, [script], { env: { ...process.env, PORT: String(port) }, stdio: 'pipe' });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const [code] = await once(child, 'exit');
  expect(code).toBe(1);
  expect(stderr.trim()).toBe(`port ${port} is already in use: stop the other server or set PORT`);
});
