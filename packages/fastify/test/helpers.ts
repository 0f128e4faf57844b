/**
 * Test helpers for the Fastify adapter: apps that are closed after each test, a streaming `fetch`
 * client that parses as bytes arrive, a log sink, and polling waits.
 */
import { Writable } from 'node:stream';
import { EventStreamParser, type ParsedEvent } from '@ssekit/core/testing';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { afterEach } from 'vitest';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** Runs `fn` after the current test (in reverse order of registration). */
export function onCleanup(fn: () => unknown): void {
  cleanups.push(fn);
}

/** A log line as pino writes it. */
export interface LogLine {
  level: number;
  msg: string;
  err?: { type?: string; message?: string; code?: string };
  [key: string]: unknown;
}

/**
 * A Fastify app whose logs land in `logs`; closed after the test. Connections are force-closed on
 * close by default, because `fetch` (undici) opens spare connections after an abort that would hold
 * `server.close()` for its 4 s keep-alive; shutdown tests pass `forceCloseConnections: 'idle'` (Fastify's
 * default) to show that the plugin alone lets `app.close()` finish.
 */
export function createApp(options: FastifyServerOptions = {}): { app: FastifyInstance; logs: LogLine[] } {
  const logs: LogLine[] = [];
  const stream = new Writable({
    write(chunk, _encoding, callback) {
      for (const line of String(chunk).split('\n')) if (line) logs.push(JSON.parse(line) as LogLine);
      callback();
    },
  });
  const app = Fastify({ logger: { level: 'warn', stream }, forceCloseConnections: true, ...options });
  onCleanup(() => app.close());
  return { app, logs };
}

/** Listens on an ephemeral port of 127.0.0.1 and returns the base URL. */
export async function listen(app: FastifyInstance): Promise<string> {
  return app.listen({ port: 0, host: '127.0.0.1' });
}

/** A streaming `fetch` response, parsed as it arrives. */
export interface OpenStream {
  response: Response;
  events: ParsedEvent[];
  parser: EventStreamParser;
  /** Everything received, as text. */
  text(): string;
  /** True once the server ended the body. */
  readonly ended: boolean;
  /** Resolves when the body ends (or the client aborted). */
  done: Promise<void>;
  /** Waits until `count` events arrived. */
  waitForEvents(count: number, timeout?: number): Promise<ParsedEvent[]>;
  /** Disconnects. */
  abort(): void;
}

/** Opens `url` with `fetch` and parses the body as it arrives; aborted after the test. */
export async function open(url: string, headers: Record<string, string> = {}): Promise<OpenStream> {
  const controller = new AbortController();
  const response = await fetch(url, {
    headers: { accept: 'text/event-stream', ...headers },
    signal: controller.signal,
  });
  const events: ParsedEvent[] = [];
  const parser = new EventStreamParser((event) => events.push(event));
  let text = '';
  let ended = false;
  const decoder = new TextDecoder();
  const done = (async () => {
    try {
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
        text += decoder.decode(chunk, { stream: true });
        parser.feed(chunk);
      }
      ended = true;
    } catch {
      // aborted by the test
    }
  })();
  onCleanup(() => controller.abort());
  return {
    response,
    events,
    parser,
    text: () => text,
    get ended() {
      return ended;
    },
    done,
    async waitForEvents(count, timeout = 5000) {
      await until(() => events.length >= count, `${count} events (got ${events.length})`, timeout);
      return events.slice(0, count);
    },
    abort: () => controller.abort(),
  };
}

/** Polls `condition` every 5 ms; throws after `timeout` ms. */
export async function until(condition: () => boolean, what: string, timeout = 5000): Promise<void> {
  const start = Date.now();
  while (!condition()) {
    if (Date.now() - start > timeout) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** A promise with its resolver. */
export function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/** Rejects when `promise` has not settled within `ms`: for things that must not hang. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
