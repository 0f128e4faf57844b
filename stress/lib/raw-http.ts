/**
 * A raw `net` HTTP/1.1 client: what the stress tests need and `fetch` cannot do — reset a connection
 * (RST) at a chosen moment, stop reading, or read a refusal to the last byte to prove no stream bytes
 * came with it.
 */
import { connect, type Socket } from 'node:net';

/** The response head as read off the wire. */
export interface Head {
  status: number;
  headers: Record<string, string>;
}

/** One raw request on its own connection. */
export class RawRequest {
  readonly socket: Socket;
  /** Set once the head has arrived. */
  head: Head | undefined;
  /** Body bytes received so far (after the head). */
  bodyBytes = 0;
  /** The body, kept only when asked for (`keepBody`). */
  readonly body: Buffer[] = [];
  /** Resolves when the socket has closed. */
  readonly closed: Promise<void>;
  /** Resolves when the request has been handed to the kernel. */
  readonly sent: Promise<void>;
  #raw = Buffer.alloc(0);
  #waiters: { test: () => boolean; resolve: () => void }[] = [];
  readonly #keepBody: boolean;

  constructor(port: number, path: string, headers: Record<string, string> = {}, keepBody = false) {
    this.#keepBody = keepBody;
    const lines = [`GET ${path} HTTP/1.1`, 'Host: 127.0.0.1', 'Accept: text/event-stream'];
    for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`);
    this.socket = connect({ port, host: '127.0.0.1', noDelay: true });
    this.socket.on('error', () => {
      // Resets are what several tests cause on purpose; the close that follows is what counts.
    });
    this.closed = new Promise((resolve) => this.socket.once('close', () => resolve()));
    this.socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    this.socket.once('close', () => this.#wake(true));
    this.sent = new Promise((resolve) => this.socket.write(`${lines.join('\r\n')}\r\n\r\n`, () => resolve()));
  }

  /** Resolves once `test()` holds (checked on every chunk), or the socket closed (then `false`). */
  until(test: () => boolean): Promise<boolean> {
    if (test()) return Promise.resolve(true);
    if (this.socket.destroyed) return Promise.resolve(false);
    return new Promise<boolean>((resolve) => {
      this.#waiters.push({ test, resolve: () => resolve(test()) });
    });
  }

  /** Resolves when the head arrived (`true`) or the connection closed first (`false`). */
  waitHead(): Promise<boolean> {
    return this.until(() => this.head !== undefined);
  }

  /** Resolves when at least `bytes` body bytes arrived (`true`) or the connection closed first. */
  waitBody(bytes = 1): Promise<boolean> {
    return this.until(() => this.bodyBytes >= bytes);
  }

  /** The body received so far, as text (needs `keepBody`). */
  text(): string {
    return Buffer.concat(this.body).toString();
  }

  /** Sends RST instead of FIN: the server's next write fails with ECONNRESET/EPIPE. */
  reset(): Promise<void> {
    if (!this.socket.destroyed) this.socket.resetAndDestroy();
    return this.closed;
  }

  /** Closes the connection normally (FIN). */
  destroy(): Promise<void> {
    this.socket.destroy();
    return this.closed;
  }

  #onData(chunk: Buffer): void {
    if (this.head === undefined) {
      this.#raw = Buffer.concat([this.#raw, chunk]);
      const end = this.#raw.indexOf('\r\n\r\n');
      if (end === -1) return;
      this.head = parseHead(this.#raw.subarray(0, end).toString('latin1'));
      chunk = this.#raw.subarray(end + 4);
      this.#raw = Buffer.alloc(0);
    }
    this.bodyBytes += chunk.length;
    if (this.#keepBody && chunk.length > 0) this.body.push(chunk);
    this.#wake(false);
  }

  #wake(closed: boolean): void {
    if (this.#waiters.length === 0) return;
    const waiting = this.#waiters;
    this.#waiters = [];
    for (const waiter of waiting) {
      if (closed || waiter.test()) waiter.resolve();
      else this.#waiters.push(waiter);
    }
  }
}

function parseHead(text: string): Head {
  const [statusLine = '', ...lines] = text.split('\r\n');
  const status = Number(statusLine.split(' ')[1]);
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return { status, headers };
}

/** Runs `task(i)` for i in [0, count) with at most `concurrency` at once. */
export async function pool(count: number, concurrency: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) await task(next++);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
}

/** Percentile (nearest rank) of an ascending array. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] as number;
}

/** Resolves `promise`, or rejects after `ms` (then calls `onTimeout`). */
export function within<T>(promise: Promise<T>, ms: number, what: string, onTimeout?: () => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      onTimeout?.();
      reject(new Error(`${what}: no result within ${ms} ms`));
    }, ms);
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
