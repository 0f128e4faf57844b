// Starts the example as the README does (node examples/fastify-chat/server.js, built packages imported
// by name) and checks it over the wire: the page, a posted message arriving on the stream, input
// validation, resume after a reconnect, and SIGTERM.
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { collectEvents } from '@ssekit/core/testing';
import { EventSource } from 'eventsource';
import { afterEach, beforeAll, expect, test } from 'vitest';
import { ensureBuilt } from '../../../scripts/ensure-built.js';
import { type ExampleServer, startExample } from '../../_test/example.js';

beforeAll(() => {
  ensureBuilt(['core', 'fastify']);
}, 120_000);

const servers: ExampleServer[] = [];
const sources: EventSource[] = [];
afterEach(async () => {
  for (const source of sources.splice(0)) source.close();
  for (const server of servers.splice(0)) await server.stop('SIGKILL');
});

const script = fileURLToPath(new URL('../server.js', import.meta.url));

/** Starts the server on a free port (PORT=0) and reads the port from its `listening on …` line. */
async function start(): Promise<{ url: string; child: ChildProcess }> {
  const server = await startExample(script);
  servers.push(server);
  return { url: server.url.replace('localhost', '127.0.0.1'), child: server.process };
}

function post(url: string, body: unknown): Promise<Response> {
  return fetch(`${url}/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
}

test('GET / is the HTML page (never an SSE response) with the elements the browser tests use', async () => {
  const { url } = await start();
  const res = await fetch(`${url}/`, { headers: { accept: 'text/event-stream, text/html' } });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/html/);
  const html = await res.text();
  expect(html).toContain('<ul id="messages">');
  expect(html).toContain('id="state"');
  expect(html).toContain("new EventSource('/events')");
  expect(html).toContain('item.dataset.id = event.lastEventId');
  expect(html).toContain("addEventListener('ssekit-gap'");
});

test('a posted message arrives on the stream; bad input is refused by the schema', async () => {
  const { url } = await start();
  const es = new EventSource(`${url}/events`);
  sources.push(es);
  await new Promise<void>((resolve, reject) => {
    es.onopen = () => resolve();
    es.onerror = () => reject(new Error('EventSource failed'));
  });
  const arrived = new Promise<MessageEvent>((resolve) => {
    es.onmessage = resolve;
  });

  const created = await post(url, { user: 'ann', text: 'hello\nworld' });
  expect(created.status).toBe(201);
  const { id } = (await created.json()) as { id: string };
  const message = await arrived;
  expect(message.lastEventId).toBe(id);
  expect(JSON.parse(message.data)).toMatchObject({ user: 'ann', text: 'hello\nworld' });

  for (const bad of [{ user: 'ann' }, { user: '', text: 'x' }, { user: 'ann', text: 'x'.repeat(501) }, 'not json']) {
    const refused = await post(url, bad);
    expect(refused.status).toBe(400);
    expect(((await refused.json()) as { code: string }).code).toBe('FST_ERR_VALIDATION');
  }
});

test('a client back with Last-Event-ID gets the messages it missed', async () => {
  const { url } = await start();
  const first = (await (await post(url, { user: 'a', text: 'one' })).json()) as { id: string };
  await post(url, { user: 'b', text: 'two' });
  await post(url, { user: 'c', text: 'three' });
  const missed = await collectEvents(`${url}/events`, { lastEventId: first.id, count: 2 });
  expect(missed.events.map((e) => JSON.parse(e.data).text)).toEqual(['two', 'three']);
});

test('SIGTERM ends the streams and the process exits', async () => {
  const { url, child } = await start();
  const res = await fetch(`${url}/events`, { headers: { accept: 'text/event-stream' } });
  expect(res.status).toBe(200);
  const body = (async () => {
    let text = '';
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) text += Buffer.from(chunk);
    return text;
  })();
  child.kill('SIGTERM');
  const [code] = await once(child, 'exit');
  expect(code).toBe(0);
  expect(await body).toMatch(/retry: 1000\n/);
});
