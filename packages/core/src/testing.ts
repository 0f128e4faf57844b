/**
 * Helpers for testing SSE endpoints (`@ssekit/core/testing`): a spec-exact parser, and
 * `collectEvents()` that reads events from a URL, a `node:http` server, an Express app or a Fastify
 * instance (through `inject`). Our own test suite uses them next to real clients.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One event as `EventSource` would dispatch it. */
export interface ParsedEvent {
  /** The event type (`'message'` when none was given). */
  type: string;
  /** The data, lines joined with LF. */
  data: string;
  /** The last event id in force when this event was dispatched (`''` when none). */
  lastEventId: string;
}

/** Everything read from a stream. */
export interface ParsedStream {
  events: ParsedEvent[];
  /** Comment lines (without the colon and one following space). */
  comments: string[];
  /** The last valid `retry:` value, if any. */
  retry: number | undefined;
  /** The last event id at the end of the input. */
  lastEventId: string;
}

/**
 * An incremental parser following WHATWG HTML §9.2.6 exactly: lines end at CRLF, CR or LF; a leading
 * BOM is skipped; one space after the colon is stripped; an `id` holding NUL is ignored; `retry` must be
 * digits only; an event is dispatched on a blank line when data was given.
 */
export class EventStreamParser {
  readonly result: ParsedStream = { events: [], comments: [], retry: undefined, lastEventId: '' };
  #buffer = '';
  #data: string[] | undefined;
  #type = '';
  #idBuffer = '';
  #first = true;
  #pendingCR = false;
  readonly #decoder = new TextDecoder('utf-8');
  readonly #onEvent: ((event: ParsedEvent) => void) | undefined;

  constructor(onEvent?: (event: ParsedEvent) => void) {
    this.#onEvent = onEvent;
  }

  /** Feeds bytes or text; dispatches every complete event. */
  feed(chunk: string | Uint8Array): void {
    let text: string;
    if (typeof chunk === 'string') {
      text = chunk;
      if (this.#first && text.length > 0) {
        this.#first = false;
        if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
      }
    } else {
      // The UTF-8 decoder already drops one leading BOM (WHATWG "UTF-8 decode"); a second one is
      // content (WPT eventsource/format-bom), so nothing more is stripped here.
      text = this.#decoder.decode(chunk, { stream: true });
      this.#first = false;
    }
    // An empty chunk (or half a character) must not forget a CR that ended the previous chunk, else
    // the LF of a CRLF cut around it would read as a blank line and dispatch early.
    if (text.length === 0) return;
    // A CR at the end of the previous chunk already ended a line; a LF right after it is part of it.
    if (this.#pendingCR && text.startsWith('\n')) text = text.slice(1);
    this.#pendingCR = false;
    this.#buffer += text;
    let start = 0;
    for (let i = 0; i < this.#buffer.length; i++) {
      const c = this.#buffer.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      this.#line(this.#buffer.slice(start, i));
      if (c === 13) {
        if (i + 1 < this.#buffer.length) {
          if (this.#buffer.charCodeAt(i + 1) === 10) i++;
        } else {
          this.#pendingCR = true;
        }
      }
      start = i + 1;
    }
    this.#buffer = this.#buffer.slice(start);
  }

  #line(line: string): void {
    if (line === '') {
      this.#dispatch();
      return;
    }
    const colon = line.indexOf(':');
    if (colon === 0) {
      this.result.comments.push(line.slice(line.charCodeAt(1) === 32 ? 2 : 1));
      return;
    }
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.charCodeAt(0) === 32) value = value.slice(1);
    if (field === 'data') {
      if (this.#data === undefined) this.#data = [];
      this.#data.push(value);
    } else if (field === 'event') this.#type = value;
    else if (field === 'id') {
      if (!value.includes('\0')) this.#idBuffer = value;
    } else if (field === 'retry') {
      if (/^[0-9]+$/.test(value)) this.result.retry = Number(value);
    }
  }

  #dispatch(): void {
    this.result.lastEventId = this.#idBuffer;
    const data = this.#data;
    const type = this.#type;
    this.#data = undefined;
    this.#type = '';
    if (data === undefined) return;
    const event: ParsedEvent = { type: type || 'message', data: data.join('\n'), lastEventId: this.#idBuffer };
    this.result.events.push(event);
    this.#onEvent?.(event);
  }
}

/** Parses a whole `text/event-stream` body. */
export function parseEventStream(input: string | Uint8Array): ParsedStream {
  const parser = new EventStreamParser();
  parser.feed(input);
  return parser.result;
}

/** Options of {@link collectEvents}. */
export interface CollectOptions {
  /** Path (and query) to request when the target is a server or an app. Default `'/'`. */
  path?: string;
  /** Stop after this many events. Default: read until the stream ends. */
  count?: number;
  /** Give up after this many ms (rejects, with what arrived in `error.events`). Default 5000. */
  timeout?: number;
  /** Sent as the `Last-Event-ID` header. */
  lastEventId?: string;
  /** Extra request headers. */
  headers?: Record<string, string>;
}

/** Collection result: the events, and the response's status and headers. */
export interface Collected extends ParsedStream {
  status: number;
  headers: Record<string, string | string[] | undefined>;
}

/** Something with Fastify's `inject()`. */
interface Injectable {
  inject(options: Record<string, unknown>): Promise<{
    statusCode: number;
    headers: Record<string, string | string[] | number | undefined>;
    stream(): NodeJS.ReadableStream;
  }>;
}

/** Something that handles node:http requests: an Express app or a plain listener. */
type RequestListener = (req: IncomingMessage, res: import('node:http').ServerResponse) => void;

/**
 * Reads events from `target` until `count` events arrived or the stream ended, then disconnects.
 * `target` is a URL, a listening `node:http` server, an Express app (a request listener: it is served
 * on an ephemeral port for the call) or a Fastify instance (read through `inject` with a streamed payload).
 */
export async function collectEvents(
  target: string | URL | Server | RequestListener | Injectable,
  options: CollectOptions = {},
): Promise<Collected> {
  const headers: Record<string, string> = { accept: 'text/event-stream', ...options.headers };
  if (options.lastEventId !== undefined) headers['last-event-id'] = options.lastEventId;
  const path = options.path ?? '/';
  // The timeout also covers waiting for the response head: a server that never answers makes
  // collectEvents reject, not hang.
  const deadline = Date.now() + (options.timeout ?? 5000);
  if (typeof (target as Injectable).inject === 'function') {
    const res = await beforeDeadline(
      (target as Injectable).inject({ method: 'GET', url: path, headers, payloadAsStream: true }),
      deadline,
      options,
    );
    return read(res.stream(), res.statusCode, res.headers as Collected['headers'], options, deadline, () => {
      (res.stream() as unknown as { destroy?: () => void }).destroy?.();
    });
  }
  if (typeof target === 'function') {
    const server = createServer(target as RequestListener);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      return await collectEvents(server, options);
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }
  let url: URL;
  if (typeof target === 'string' || target instanceof URL) url = new URL(target);
  else {
    const address = (target as Server).address() as AddressInfo | null;
    if (address === null) throw new Error('collectEvents: the server is not listening');
    url = new URL(path, `http://127.0.0.1:${address.port}`);
  }
  const controller = new AbortController();
  const res = await beforeDeadline(fetch(url, { headers, signal: controller.signal }), deadline, options, () =>
    controller.abort(),
  );
  const responseHeaders: Collected['headers'] = {};
  res.headers.forEach((value, name) => {
    responseHeaders[name] = value;
  });
  if (res.body === null) return { ...parseEventStream(''), status: res.status, headers: responseHeaders };
  const body = res.body;
  return read(body as unknown as AsyncIterable<Uint8Array>, res.status, responseHeaders, options, deadline, () =>
    controller.abort(),
  );
}

/** Settles like `promise`, or rejects (after calling `abort`) when the deadline passes first. */
function beforeDeadline<T>(
  promise: Promise<T>,
  deadline: number,
  options: CollectOptions,
  abort?: () => void,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(
      () => {
        abort?.();
        const wanted = options.count ?? 'all';
        reject(
          Object.assign(
            new Error(`collectEvents: no response, 0 of ${wanted} events within ${options.timeout ?? 5000} ms`),
            { events: [] },
          ),
        );
      },
      Math.max(0, deadline - Date.now()),
    );
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}

function read(
  body: AsyncIterable<Uint8Array | string> | NodeJS.ReadableStream,
  status: number,
  headers: Collected['headers'],
  options: CollectOptions,
  deadline: number,
  disconnect: () => void,
): Promise<Collected> {
  const parser = new EventStreamParser();
  const wanted = options.count ?? Number.POSITIVE_INFINITY;
  return new Promise<Collected>((resolve, reject) => {
    let done = false;
    const finish = (error?: Error): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      disconnect();
      if (error) reject(Object.assign(error, { events: parser.result.events }));
      else resolve({ ...parser.result, status, headers });
    };
    const timer = setTimeout(
      () =>
        finish(
          new Error(
            `collectEvents: ${parser.result.events.length} of ${wanted} events within ${options.timeout ?? 5000} ms`,
          ),
        ),
      Math.max(0, deadline - Date.now()),
    );
    (async () => {
      try {
        for await (const chunk of body as AsyncIterable<Uint8Array | string>) {
          parser.feed(chunk);
          if (parser.result.events.length >= wanted) break;
        }
        finish();
      } catch (error) {
        // An abort after we had what we wanted is how we disconnect, not a failure.
        if (done || parser.result.events.length >= wanted) finish();
        else finish(error as Error);
      }
    })();
  });
}

/**
 * A superagent/supertest parser: `request(app).get('/events').parse(sseParser({ count: 3 }))` gives
 * `res.body` as the parsed events. Without `count` it reads until the server ends the stream.
 */
export function sseParser(
  options: { count?: number } = {},
): (res: unknown, callback: (error: Error | null, body: ParsedEvent[]) => void) => void {
  // Typed `res: unknown` so that `.parse(sseParser())` type-checks against superagent's own
  // `Response` type; at run time superagent passes the node:http IncomingMessage.
  return (response, callback) => {
    const res = response as IncomingMessage;
    const parser = new EventStreamParser();
    let done = false;
    const finish = (error: Error | null): void => {
      if (done) return;
      done = true;
      callback(error, parser.result.events);
    };
    res.on('data', (chunk: Buffer) => {
      parser.feed(chunk);
      if (options.count !== undefined && parser.result.events.length >= options.count) {
        finish(null);
        res.destroy();
      }
    });
    res.on('end', () => finish(null));
    res.on('error', (error) => finish(done ? null : error));
    res.on('close', () => finish(null));
  };
}
