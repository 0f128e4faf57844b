/**
 * StreamGroup over the wire: the connection limit answers 503 + Retry-After before any stream byte,
 * a slot frees up when a client leaves, and `closeAll()` (a group's, or the process-wide one) ends
 * every stream with an optional `retry:` hint that real clients obey.
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import {
  allStreams,
  closeAll,
  createEventStream,
  type EventStream,
  type EventStreamOptions,
  isSseError,
  SseError,
  StreamGroup,
} from '@ssekit/core';
import { EventStreamParser } from '@ssekit/core/testing';
import { EventSource } from 'eventsource';
import { describe, expect, it } from 'vitest';
import { cleanups, listen, until } from './helpers.js';

interface Refusal {
  error: unknown;
  headersSent: boolean;
}

/**
 * A node:http server opening a stream per request, and answering a refused one the way a user would:
 * with the status and headers the SseError carries.
 */
async function sseServer(options: (req: IncomingMessage) => EventStreamOptions) {
  const streams: EventStream[] = [];
  const refusals: Refusal[] = [];
  const requests: string[] = [];
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    requests.push(req.url ?? '');
    let stream: EventStream;
    try {
      stream = createEventStream(req, res, options(req));
    } catch (error) {
      refusals.push({ error, headersSent: res.headersSent });
      if (isSseError(error) && error.status !== undefined) {
        res.writeHead(error.status, { 'content-type': 'text/plain', ...error.headers });
        res.end(error.message);
      } else {
        res.writeHead(500).end();
      }
      return;
    }
    streams.push(stream);
    stream.send('hello', { id: String(streams.length) });
  });
  const { port } = await listen(server);
  return { streams, refusals, requests, url: (path = '/') => `http://127.0.0.1:${port}${path}` };
}

interface FetchClient {
  response: Response;
  parser: EventStreamParser;
  text: () => string;
  /** Resolves when the server ends the body. */
  ended: Promise<void>;
  close(): void;
}

/** A fetch streaming client that parses and keeps everything that arrives. */
async function openFetch(url: string): Promise<FetchClient> {
  const controller = new AbortController();
  const response = await fetch(url, { headers: { accept: 'text/event-stream' }, signal: controller.signal });
  const parser = new EventStreamParser();
  const decoder = new TextDecoder();
  let text = '';
  const ended = (async () => {
    if (response.body === null) return;
    try {
      for await (const chunk of response.body) {
        parser.feed(chunk);
        text += decoder.decode(chunk, { stream: true });
      }
    } catch {
      // Aborted by close().
    }
  })();
  const client = { response, parser, text: () => text, ended, close: () => controller.abort() };
  cleanups.push(() => client.close());
  return client;
}

describe('StreamGroup limits', () => {
  it('refuses the stream past maxConnections with SseError 503 + Retry-After, before any stream byte', async () => {
    const group = new StreamGroup({ maxConnections: 2, retryAfter: 7 });
    const { streams, refusals, url } = await sseServer(() => ({ group, keepalive: false }));
    const a = await openFetch(url());
    const b = await openFetch(url());
    await until(() => a.parser.result.events.length === 1 && b.parser.result.events.length === 1, 'two streams');
    expect(group.size).toBe(2);

    const refused = await fetch(url(), { headers: { accept: 'text/event-stream' } });
    const body = await refused.text();
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('7');
    expect(refused.headers.get('content-type')).toBe('text/plain');
    expect(body).toBe('too many open streams (limit 2)');

    expect(refusals).toHaveLength(1);
    const { error, headersSent } = refusals[0] as Refusal;
    // Nothing had been written when it threw, so the app could still answer.
    expect(headersSent).toBe(false);
    expect(error).toBeInstanceOf(SseError);
    expect(error).toMatchObject({
      code: 'ERR_SSE_TOO_MANY_CONNECTIONS',
      status: 503,
      statusCode: 503,
      headers: { 'Retry-After': '7' },
    });
    expect(group.refused).toBe(1);
    expect(group.size).toBe(2);
    expect(streams).toHaveLength(2);
  });

  it('frees a slot when a client leaves', async () => {
    const group = new StreamGroup({ maxConnections: 1 });
    const { url } = await sseServer(() => ({ group, keepalive: false }));
    const first = await openFetch(url());
    await until(() => first.parser.result.events.length === 1, 'the first stream');
    const refused = await fetch(url());
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('5');
    await refused.text();

    first.close();
    await until(() => group.size === 0, 'the slot to free up', 1000);
    const next = await openFetch(url());
    expect(next.response.status).toBe(200);
    expect(next.response.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    await until(() => next.parser.result.events.length === 1, 'the next stream');
    expect(group.size).toBe(1);
    expect(group.refused).toBe(1);
  });

  it('refuses everything with maxConnections 0, and validates its options', async () => {
    const group = new StreamGroup({ maxConnections: 0 });
    const { url, streams } = await sseServer(() => ({ group }));
    const refused = await fetch(url());
    expect(refused.status).toBe(503);
    await refused.text();
    expect(streams).toHaveLength(0);
    for (const options of [{ maxConnections: -1 }, { maxConnections: Number.NaN }, { retryAfter: 1.5 }]) {
      expect(() => new StreamGroup(options)).toThrow(expect.objectContaining({ code: 'ERR_SSE_INVALID_OPTION' }));
    }
  });
});

describe('closeAll', () => {
  it('group.closeAll({ retry: 1234 }) sends `retry: 1234` then ends every stream; eventsource reconnects', async () => {
    const group = new StreamGroup();
    const { url, requests, streams } = await sseServer(() => ({ group, keepalive: false }));
    const raw = [await openFetch(url('/raw1')), await openFetch(url('/raw2'))];
    const es = new EventSource(url('/es'));
    cleanups.push(() => es.close());
    const errors: number[] = [];
    es.addEventListener('error', () => errors.push(Date.now()));
    await once(es as unknown as EventTarget, 'message');
    await until(() => raw.every((c) => c.parser.result.events.length === 1), 'the fetch streams');
    expect(group.size).toBe(3);

    const closedAt = Date.now();
    group.closeAll({ retry: 1234 });
    expect(group.size).toBe(0);
    expect(streams.every((s) => !s.isOpen)).toBe(true);

    for (const client of raw) {
      await client.ended;
      expect(client.text().endsWith('retry: 1234\n\n')).toBe(true);
      expect(client.parser.result.retry).toBe(1234);
    }
    // The eventsource client sees the end, waits the hinted 1234 ms (not its default 3 s), and is back.
    await until(() => requests.filter((r) => r === '/es').length === 2, 'the eventsource reconnection', 4000);
    const delay = Date.now() - closedAt;
    expect(errors.length).toBeGreaterThanOrEqual(1);
    expect(delay).toBeGreaterThanOrEqual(1200);
    expect(delay).toBeLessThan(2900);
    await until(() => group.size === 1, 'the reconnected stream in the group');
  });

  it('closeAll() from the module closes every stream of the process, in any group or none', async () => {
    const group = new StreamGroup();
    const one = await sseServer(() => ({ group, keepalive: false }));
    const two = await sseServer(() => ({ keepalive: false }));
    const clients = [await openFetch(one.url()), await openFetch(one.url()), await openFetch(two.url())];
    await until(() => clients.every((c) => c.parser.result.events.length === 1), 'three streams');
    expect(allStreams.size).toBe(3);
    expect(group.size).toBe(2);

    closeAll();
    await Promise.all(clients.map((c) => c.ended));
    expect(allStreams.size).toBe(0);
    expect(group.size).toBe(0);
    for (const stream of [...one.streams, ...two.streams]) expect(stream.isOpen).toBe(false);
    // Without a retry option, no hint is written: the stream just ends.
    for (const client of clients) {
      expect(client.parser.result.retry).toBeUndefined();
      expect(client.text()).toBe(`id: ${client.parser.result.lastEventId}\ndata: hello\n\n`);
    }
  });
});
