/**
 * What core needs from the platform, found by feature detection so that the same modules run on Node,
 * Bun, Deno and workerd: none of them imports `node:` or assumes a Node global.
 */

/** Bytes of one chunk of the wire: text, or UTF-8 bytes shared by every socket it goes to. */
export type Chunk = string | Uint8Array;

interface NodeLikeGlobals {
  setImmediate?: (callback: () => void) => unknown;
  Buffer?: { from(text: string): Uint8Array };
  navigator?: { userAgent?: string };
  Bun?: unknown;
  Deno?: unknown;
}

const platform = globalThis as unknown as NodeLikeGlobals;

/** The runtimes whose rules core adapts to (each place that does says why). */
export const RUNTIME = {
  workerd: platform.navigator?.userAgent === 'Cloudflare-Workers',
  bun: platform.Bun !== undefined,
  deno: platform.Deno !== undefined,
} as const;
const setImmediateFn = platform.setImmediate;
const NodeBuffer = platform.Buffer;
const encoder = new TextEncoder();
let immediate = typeof setImmediateFn === 'function';
// On workerd a timer belongs to the request that set it and is dropped once that request has answered
// (a publish from a request that answers at once): only a microtask is sure to run.
const microtaskOnly = RUNTIME.workerd;

/**
 * Runs `callback` once the current turn's I/O callbacks are done: `setImmediate` where it exists (it
 * runs after the turn's socket reads, so everything a turn sends leaves in one write), else a
 * zero-delay timer; on workerd, a microtask.
 */
export function defer(callback: () => void): void {
  if (microtaskOnly) {
    queueMicrotask(callback);
    return;
  }
  if (immediate) {
    try {
      (setImmediateFn as (callback: () => void) => unknown)(callback);
      return;
    } catch {
      // Next.js's edge sandbox defines setImmediate and throws when it is called.
      immediate = false;
    }
  }
  setTimeout(callback, 0);
}

/**
 * UTF-8 bytes of `text`. On Node this is a `Buffer` (its sockets take one without wrapping it in a new
 * view per write), elsewhere a `Uint8Array`.
 */
export const utf8: (text: string) => Uint8Array =
  NodeBuffer !== undefined && typeof NodeBuffer.from === 'function'
    ? (text) => NodeBuffer.from(text)
    : (text) => encoder.encode(text);

const decoder = new TextDecoder('utf-8');

/** Text of UTF-8 `bytes` (invalid sequences become U+FFFD). */
export function text(bytes: Uint8Array): string {
  return decoder.decode(bytes);
}

/** Byte length of a chunk (UTF-16 length for text: exact for ASCII, what the queue bounds count). */
export function sizeOf(chunk: Chunk): number {
  return typeof chunk === 'string' ? chunk.length : chunk.byteLength;
}

/** One chunk of several, joined without copying when they are all text. */
export function join(chunks: readonly Chunk[]): Chunk {
  let allText = true;
  for (const chunk of chunks) {
    if (typeof chunk !== 'string') {
      allText = false;
      break;
    }
  }
  if (allText) return (chunks as string[]).join('');
  const parts = chunks.map((c) => (typeof c === 'string' ? utf8(c) : c));
  let length = 0;
  for (const part of parts) length += part.byteLength;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.byteLength;
  }
  return out;
}

/** Keeps a timer from holding a Node process open; a no-op where timers have no `unref`. */
export function unref(timer: unknown): void {
  (timer as { unref?: () => void } | undefined)?.unref?.();
}

/**
 * A readable description of any thrown value — a Symbol, an object without a prototype, `null` —
 * that never throws itself.
 */
export function describeError(error: unknown): string {
  try {
    if (error instanceof Error) return error.message;
    if (typeof error === 'object' && error !== null) {
      const message = (error as { message?: unknown }).message;
      if (typeof message === 'string') return message;
      return Object.prototype.toString.call(error);
    }
    return String(error);
  } catch {
    return 'an unprintable value';
  }
}
