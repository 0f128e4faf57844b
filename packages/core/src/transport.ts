/**
 * The transport seam: everything an event stream needs from the connection under it, and nothing
 * about `ServerResponse`, `Http2ServerResponse` or `ReadableStream`. A transport opens the response
 * (status and headers), writes chunks and says when it wants no more until a drain, ends gracefully,
 * aborts, and tells its stream when the client is gone. Implementations: `transports/node.ts`
 * (`node:http` and the `node:http2` compatibility API) and `transports/web.ts` (a pull-based
 * `ReadableStream` for fetch handlers).
 */
import type { Chunk } from './runtime.js';

/** A header list as `[name, value]` pairs, in order; a name may repeat. */
export type HeaderList = [name: string, value: string][];

/**
 * How a transport reports back to the stream it carries. One object serves every stream of a kind;
 * the transport passes back the `owner` it was bound with.
 */
export interface TransportEvents<O> {
  /** The transport takes writes again after a `write()` returned `false`. */
  drained(owner: O): void;
  /** The client is gone, or the connection failed (`error`); the transport writes nothing more. */
  gone(owner: O, error?: unknown): void;
}

/** What an event stream writes through. */
export interface Transport {
  /**
   * False where the protocol forbids connection-specific headers (`Connection`, `Keep-Alive`): HTTP/2
   * and fetch handlers, whose runtime owns the connection.
   */
  readonly connectionHeaders: boolean;
  /** True when the app already set header `name` (lower case) on the response: ssekit then keeps it. */
  hasHeader(name: string): boolean;
  /** Sends the status and headers at once. Called once, before any `write()`. */
  open(status: number, headers: HeaderList): void;
  /**
   * Writes one chunk. Returns `false` when the client is behind: the stream then waits for `drained`
   * before it writes again. Never throws; a failed write is reported as `gone`.
   */
  write(chunk: Chunk): boolean;
  /** Ends the response after what was written. */
  end(): void;
  /** Drops the connection at once, discarding what the client has not read (a TCP reset where possible). */
  abort(): void;
  /** True once the response has ended and been taken by the client, or the connection is gone. */
  readonly settled: boolean;
  /** Starts reporting to `events` for `owner`. Called once, when the stream is created. */
  bind<O>(events: TransportEvents<O>, owner: O): void;
}
