/**
 * The transport for `node:http` responses and the `node:http2` compatibility API (Express and Fastify
 * responses are these): `write()`'s result and `'drain'` carry backpressure, the response's `'close'`
 * (which, unlike the request's, fires when the connection goes) says the client is gone, and an abort
 * resets the TCP connection so the kernel frees the unread send buffer at once.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import type { Socket } from 'node:net';
import { SseError } from '../errors.js';
import { openStream } from '../handshake.js';
import { lastEventIdOf } from '../last-event-id.js';
import { checkOptionNames, type EventStreamOptions, STREAM_OPTION_NAMES, validateStreamOptions } from '../options.js';
import type { RouteRequest } from '../route.js';
import type { Chunk } from '../runtime.js';
import type { EventStream } from '../stream.js';
import type { HeaderList, Transport, TransportEvents } from '../transport.js';

/** A request from `node:http` or `node:http2` (compat API); Express and Fastify requests are these. */
export type SseRequest = IncomingMessage | Http2ServerRequest;
/** A response from `node:http` or `node:http2` (compat API). */
export type SseResponse = ServerResponse | Http2ServerResponse;

const BOUND = Symbol('ssekit.transport');
// Set in NodeTransport's static block, which can reach its private members.
let responseClosed: (this: SseResponse) => void;
let responseErrored: (this: SseResponse, error: Error) => void;
let responseDrained: (this: SseResponse) => void;
let socketDrained: (this: Socket) => void;

/** A {@link Transport} over a `node:http` or `node:http2` (compat) response. */
export class NodeTransport implements Transport {
  readonly connectionHeaders: boolean;
  readonly #req: SseRequest;
  readonly #res: SseResponse;
  #events: TransportEvents<unknown> | undefined;
  #owner: unknown;
  // Set when the chunked frames go to the socket itself (see #writeDirect).
  #socket: Socket | undefined;

  constructor(req: SseRequest, res: SseResponse) {
    this.#req = req;
    this.#res = res;
    // HTTP/2 forbids connection-specific headers.
    this.connectionHeaders = req.httpVersionMajor < 2;
  }

  /** The request this transport answers. */
  get request(): SseRequest {
    return this.#req;
  }

  /** The response this transport writes to. */
  get response(): SseResponse {
    return this.#res;
  }

  hasHeader(name: string): boolean {
    return this.#res.hasHeader(name);
  }

  get settled(): boolean {
    const res = this.#res;
    return (
      res.writableFinished ||
      res.destroyed ||
      (res as Http2ServerResponse).stream?.destroyed === true ||
      (res as ServerResponse).socket?.destroyed === true
    );
  }

  open(status: number, head: HeaderList): void {
    const res = this.#res;
    const http2 = !this.connectionHeaders;
    if (http2) res.removeHeader('Connection');
    // A zero-length body would let Node send Content-Length: 0; make sure nothing like that is set.
    res.removeHeader('Content-Length');
    if (!http2 && !Object.hasOwn(res, 'writeHead')) {
      // Handing node:http the headers as one flat list keeps no per-response header object alive for
      // the life of the stream (what setHeader() would), and Node merges any the app set before.
      const flat: string[] = [];
      for (const [name, value] of head) flat.push(name, value);
      (res as ServerResponse).writeHead(status, flat);
    } else {
      // HTTP/2, or a writeHead() patched by middleware (compression's on-headers reads setHeader()s).
      const values = new Map<string, string[]>();
      for (const [name, value] of head) {
        const list = values.get(name);
        if (list === undefined) values.set(name, [value]);
        else list.push(value);
      }
      for (const [name, list] of values) res.setHeader(name, list.length === 1 ? (list[0] as string) : list);
      res.writeHead(status);
    }
    if (http2) {
      (res as Http2ServerResponse).setTimeout(0);
    } else {
      // Optional calls: Fastify's inject() and other in-process requests have a socket without them.
      const socket = (this.#req as IncomingMessage).socket as Partial<Socket> | undefined;
      socket?.setTimeout?.(0);
      socket?.setNoDelay?.(true);
    }
    // Both responses have flushHeaders(); @types/node only declares it on node:http's.
    (res as ServerResponse).flushHeaders();
    this.#socket = directSocket(this.#req, res);
    if (this.#socket !== undefined) {
      (this.#socket as Socket & Record<symbol, NodeTransport>)[BOUND] = this;
      this.#socket.on('drain', socketDrained);
    }
  }

  write(chunk: Chunk): boolean {
    if (this.#socket !== undefined) return this.#writeDirect(this.#socket, chunk);
    const res = this.#res as ServerResponse;
    try {
      const ok = res.write(chunk);
      // compression() replaces res.write with a zlib stream that holds data until flushed.
      const flush = (res as { flush?: unknown }).flush;
      if (typeof flush === 'function') flush.call(res);
      return ok;
    } catch (error) {
      this.#gone(error);
      return false;
    }
  }

  end(): void {
    try {
      this.#res.end();
    } catch (error) {
      this.#gone(error);
    }
  }

  abort(): void {
    const res = this.#res;
    const socket = (res as ServerResponse).socket as (Socket & { resetAndDestroy?: () => void }) | null;
    if (this.connectionHeaders && socket != null && typeof socket.resetAndDestroy === 'function') {
      try {
        // An RST: a FIN would wait behind the unread data while the kernel keeps the send buffer.
        socket.resetAndDestroy();
        return;
      } catch {
        // Not a TCP handle (TLS, a test socket): fall back to destroy().
      }
    }
    res.destroy();
  }

  bind<O>(events: TransportEvents<O>, owner: O): void {
    // Shared listeners (one function for all streams, `this` is the response) instead of closures
    // per stream: idle connections are where memory per stream adds up.
    this.#events = events as TransportEvents<unknown>;
    this.#owner = owner;
    const res = this.#res as SseResponse & Record<symbol, NodeTransport>;
    res[BOUND] = this;
    res.on('close', responseClosed);
    res.on('error', responseErrored);
    res.on('drain', responseDrained);
  }

  /**
   * A response whose prototype a framework switched (Express does, per request) takes a slower path
   * through Node's `write()`: property lookups on it are megamorphic. For such a response, with
   * nothing wrapping `res.write` (compression) and the headers out with chunked encoding, the frames
   * go to the socket as the chunks Node would have framed: the length in hex, the data, CRLF. `end()`
   * still goes through the response, which writes the last chunk after them.
   */
  #writeDirect(socket: Socket, chunk: Chunk): boolean {
    const length = typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.byteLength;
    if (length === 0) return true;
    try {
      socket.cork();
      socket.write(`${length.toString(16)}\r\n`, 'latin1');
      socket.write(chunk);
      const ok = socket.write('\r\n', 'latin1');
      socket.uncork();
      return ok;
    } catch (error) {
      this.#gone(error);
      return false;
    }
  }

  #gone(error?: unknown): void {
    this.#events?.gone(this.#owner, error);
  }

  #drained(): void {
    this.#events?.drained(this.#owner);
  }

  static {
    // The response's listeners, shared by every transport: `this` is the response.
    responseClosed = function (this: SseResponse): void {
      const transport = (this as unknown as Record<symbol, NodeTransport | undefined>)[BOUND];
      if (transport !== undefined) transport.#gone();
    };
    responseErrored = function (this: SseResponse, error: Error): void {
      const transport = (this as unknown as Record<symbol, NodeTransport | undefined>)[BOUND];
      if (transport !== undefined) transport.#gone(error);
    };
    socketDrained = function (this: Socket): void {
      const transport = (this as unknown as Record<symbol, NodeTransport | undefined>)[BOUND];
      if (transport !== undefined) transport.#drained();
    };
    responseDrained = function (this: SseResponse): void {
      const transport = (this as unknown as Record<symbol, NodeTransport | undefined>)[BOUND];
      if (transport !== undefined) transport.#drained();
    };
  }
}

/**
 * Opens a Server-Sent Events stream on a `node:http` or `node:http2` (compat) response: writes status
 * 200 and the SSE headers at once, turns off socket timeouts and Nagle, and returns the stream.
 *
 * @throws {SseError} `ERR_SSE_HEADERS_SENT` when the response has started;
 * `ERR_SSE_TOO_MANY_CONNECTIONS` (503) when `options.group` is full; `ERR_SSE_INVALID_OPTION`.
 * Nothing is written when it throws, so the caller can still answer.
 */
export function createEventStream(req: SseRequest, res: SseResponse, options: EventStreamOptions = {}): EventStream {
  checkOptionNames(options, STREAM_OPTION_NAMES, 'createEventStream()');
  validateStreamOptions(options);
  return openNodeStream(req, res, options);
}

/**
 * The socket to write chunked frames to directly, or `undefined` to go through the response: only a
 * prototype-switched HTTP/1.1 response (Express's) with chunked encoding, a plain `write`, nothing
 * buffered in it and a writable socket. See {@link NodeTransport.write}.
 */
function directSocket(req: SseRequest, res: SseResponse): Socket | undefined {
  if (req.httpVersionMajor !== 1 || req.method === 'HEAD') return undefined;
  const http1 = res as ServerResponse & { chunkedEncoding?: boolean };
  const proto = Object.getPrototypeOf(res) as object | null;
  // node:http's own ServerResponse.prototype defines writeHead; Express's response object does not.
  if (proto === null || Object.hasOwn(proto, 'writeHead')) return undefined;
  if (Object.hasOwn(res, 'write') || http1.chunkedEncoding !== true || http1.writableLength !== 0) return undefined;
  const socket = http1.socket;
  if (socket == null || !socket.writable || socket.destroyed) return undefined;
  return socket;
}

function openNodeStream(req: SseRequest, res: SseResponse, options: EventStreamOptions): EventStream {
  // The transport's constructor writes nothing: a refusal below still leaves the response untouched.
  const transport = connectNode(req, res);
  options.group?.admit();
  const lastEventId = readLastEventId(req, options.maxLastEventIdLength);
  return openStream(transport, options, { method: req.method ?? 'GET', lastEventId });
}

/**
 * The transport for `res`, for adapters that open streams through the route.
 * @throws {SseError} `ERR_SSE_HEADERS_SENT` when the response has already started.
 */
export function connectNode(req: SseRequest, res: SseResponse): NodeTransport {
  if (res.headersSent) {
    throw new SseError('ERR_SSE_HEADERS_SENT', 'the response has already started; open the stream before writing');
  }
  return new NodeTransport(req, res);
}

/** A {@link RouteRequest} view of a Node request, with the framework's Accept check. */
export function nodeRequestView(req: SseRequest, accepts: (type: string) => boolean): RouteRequest {
  return {
    method: req.method ?? 'GET',
    url: (req as { originalUrl?: string }).originalUrl ?? req.url ?? '/',
    header(name) {
      const value = req.headers[name];
      return typeof value === 'string' ? value : undefined;
    },
    accepts,
  };
}

/**
 * The client's last event id on a Node request: the `Last-Event-ID` header, else the `lastEventId`
 * query parameter. Empty, too long, or holding NUL/CR/LF or invalid UTF-8: ignored.
 */
export function readLastEventId(req: SseRequest, maxLength?: number): string | undefined {
  const header = req.headers['last-event-id'];
  return lastEventIdOf(typeof header === 'string' ? header : undefined, req.url, maxLength);
}

/**
 * Answers 204 No Content: the only answer that makes `EventSource` stop reconnecting for good (any
 * other status fails the connection too, but 204 says "nothing more", not "error"). For logged-out
 * users and finished jobs.
 */
export function refuse(res: SseResponse): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  res.statusCode = 204;
  res.end();
}
