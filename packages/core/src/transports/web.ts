/**
 * The transport for fetch handlers (`(request) => Response`): the stream's bytes are a pull-based
 * `ReadableStream` that becomes the `Response` body. Backpressure is the consumer's demand — a write
 * past the body's high-water mark returns `false`, and the next `pull()` is the drain — and the client
 * is gone when the runtime cancels the body or aborts `request.signal`, whichever it does first
 * (runtimes differ in which one they fire).
 */
import { type Chunk, RUNTIME, utf8 } from '../runtime.js';
import type { HeaderList, Transport, TransportEvents } from '../transport.js';

/** Default high-water mark of the body stream, in bytes: about what a Node socket buffers. */
export const WEB_BODY_HIGH_WATER_MARK = 64 * 1024;

/** A {@link Transport} whose output is {@link WebTransport.body}, a `ReadableStream` of bytes. */
export class WebTransport implements Transport {
  readonly connectionHeaders = false;
  /** The response body: hand it to `new Response()`. */
  readonly body: ReadableStream<Uint8Array>;
  /** The status given to `open()`. */
  status = 200;
  /** The headers given to `open()`. */
  headers: HeaderList = [];
  #controller!: ReadableStreamDefaultController<Uint8Array>;
  #events: TransportEvents<unknown> | undefined;
  #owner: unknown;
  #behind = false;
  #ended = false;
  #gone = false;
  readonly #preset: ((name: string) => boolean) | undefined;

  /**
   * @param signal the request's signal, or a function that reads it (not called on Deno): its abort
   * means the client is gone.
   * @param hasHeader headers the app set on the response itself (kept instead of ssekit's).
   */
  constructor(
    signal?: AbortSignal | (() => AbortSignal),
    hasHeader?: (name: string) => boolean,
    highWaterMark = WEB_BODY_HIGH_WATER_MARK,
  ) {
    this.#preset = hasHeader;
    this.body = new ReadableStream<Uint8Array>(
      {
        start: (controller) => {
          this.#controller = controller;
        },
        pull: () => {
          if (!this.#behind) return;
          this.#behind = false;
          this.#events?.drained(this.#owner);
        },
        cancel: () => {
          this.#leave(undefined);
        },
      },
      { highWaterMark, size: (chunk) => chunk.byteLength },
    );
    // Deno warns for every request whose signal is touched (its signal also aborts after a successful
    // response): there the signal is not read at all, and the body's cancel() says the client left,
    // as promptly.
    const given = RUNTIME.deno ? undefined : typeof signal === 'function' ? signal() : signal;
    if (given !== undefined) {
      if (given.aborted) this.#gone = true;
      else given.addEventListener('abort', () => this.#leave(undefined), { once: true });
    }
  }

  hasHeader(name: string): boolean {
    return this.#preset?.(name) ?? false;
  }

  get settled(): boolean {
    return this.#gone || (this.#ended && !this.#behind);
  }

  open(status: number, headers: HeaderList): void {
    this.status = status;
    this.headers = headers;
  }

  write(chunk: Chunk): boolean {
    if (this.#gone || this.#ended) return false;
    try {
      this.#controller.enqueue(typeof chunk === 'string' ? utf8(chunk) : chunk);
    } catch (error) {
      this.#leave(error);
      return false;
    }
    const ok = (this.#controller.desiredSize ?? 0) > 0;
    if (!ok) this.#behind = true;
    return ok;
  }

  end(): void {
    if (this.#gone || this.#ended) return;
    this.#ended = true;
    try {
      this.#controller.close();
    } catch {
      // Already errored or cancelled by the runtime.
    }
  }

  abort(): void {
    if (this.#gone) return;
    this.#gone = true;
    try {
      // Discards what the body still holds. What the runtime then does with the connection is its own
      // choice: @hono/node-server closes it, Bun, Deno and workerd keep it until their own timeouts
      // (docs/runtimes). An error that @hono/node-server takes for "the client went away" would keep
      // it open there too.
      this.#controller.error(new Error('the client did not read'));
    } catch {
      // Already closed.
    }
    this.#events?.gone(this.#owner);
  }

  bind<O>(events: TransportEvents<O>, owner: O): void {
    this.#events = events as TransportEvents<unknown>;
    this.#owner = owner;
  }

  #leave(error: unknown): void {
    if (this.#gone) return;
    this.#gone = true;
    this.#events?.gone(this.#owner, error);
  }
}
