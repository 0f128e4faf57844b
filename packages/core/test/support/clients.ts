/**
 * The test clients every package's tests share: a real server on an ephemeral port, a streaming fetch
 * client that parses events as they arrive, a raw HTTP/1.1 GET that records every byte, and waiting
 * for a condition instead of sleeping.
 */
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { EventStreamParser, type ParsedEvent } from '@ssekit/core/testing';

export interface Served {
  url: string;
  server: http.Server;
  close(): Promise<void>;
}

const open: Served[] = [];

/** Serves `listener` on 127.0.0.1 and an ephemeral port; {@link closeServers} closes it. */
export async function serve(listener: http.RequestListener): Promise<Served> {
  const server = http.createServer(listener);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const served: Served = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    server,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  open.push(served);
  return served;
}

const clients: Client[] = [];

/** Closes every server and client the test opened (call from afterEach). */
export async function closeAll(): Promise<void> {
  for (const client of clients.splice(0)) client.close();
  await Promise.all(open.splice(0).map((s) => s.close()));
}

export interface Client {
  status: number;
  headers: Headers;
  events: ParsedEvent[];
  /** Every byte received, as text. */
  text(): string;
  /** Resolves with the events once `count` arrived (rejects after `timeout` ms). */
  waitFor(count: number, timeout?: number): Promise<ParsedEvent[]>;
  /** Resolves when the server ended the body (`'end'`) or the connection broke (`'error'`). */
  ended: Promise<'end' | 'error'>;
  close(): void;
}

/** A fetch streaming client that parses events as they arrive. */
export async function connect(url: string, headers: Record<string, string> = {}): Promise<Client> {
  const controller = new AbortController();
  const res = await fetch(url, {
    headers: { accept: 'text/event-stream', ...headers },
    signal: controller.signal,
  });
  const events: ParsedEvent[] = [];
  let waiters: (() => void)[] = [];
  const parser = new EventStreamParser((event) => {
    events.push(event);
    const wake = waiters;
    waiters = [];
    for (const w of wake) w();
  });
  const decoder = new TextDecoder();
  let text = '';
  let closedByUs = false;
  const ended = (async (): Promise<'end' | 'error'> => {
    if (res.body === null) return 'end';
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        text += decoder.decode(chunk, { stream: true });
        parser.feed(chunk);
      }
      return 'end';
    } catch {
      return closedByUs ? 'end' : 'error';
    } finally {
      const wake = waiters;
      waiters = [];
      for (const w of wake) w();
    }
  })();
  let finished = false;
  void ended.then(() => {
    finished = true;
  });
  const client: Client = {
    status: res.status,
    headers: res.headers,
    events,
    text: () => text,
    ended,
    async waitFor(count, timeout = 5000) {
      const deadline = Date.now() + timeout;
      while (events.length < count) {
        if (finished) throw new Error(`stream ended after ${events.length} of ${count} events`);
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`got ${events.length} of ${count} events within ${timeout} ms`);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, left);
          waiters.push(() => {
            clearTimeout(timer);
            resolve();
          });
        });
      }
      return events.slice(0, count);
    },
    close() {
      closedByUs = true;
      controller.abort();
    },
  };
  clients.push(client);
  return client;
}

/**
 * Resolves when `condition()` holds (it may ask something asynchronously, e.g. a child server),
 * polling on the event loop (rejects after `timeout` ms).
 */
export async function until(
  condition: () => boolean | Promise<boolean>,
  timeout = 5000,
  what = 'condition',
): Promise<void> {
  const deadline = Date.now() + timeout;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/**
 * A raw HTTP/1.1 GET that records every byte the server sends until it closes the connection or
 * `untilText` appears: for asserting on exactly what went over the wire (status line, headers, body).
 */
export function rawGet(url: string, headers: Record<string, string> = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, headers: { accept: 'text/event-stream', ...headers } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
      });
      const head = `${res.statusCode}\n${Object.entries(res.headers)
        .map(([k, v]) => `${k}: ${String(v)}`)
        .join('\n')}\n\n`;
      res.on('end', () => resolve(head + body));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

/** A port nothing listens on right now (listen on 0, read it, close). */
export async function freePort(): Promise<number> {
  const server = http.createServer();
  server.unref();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
