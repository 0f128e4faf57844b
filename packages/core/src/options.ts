/**
 * The options of an event stream, and the checks every factory runs once, where options are given
 * (`createEventStream`, the route behind every adapter, `createHub`): wrong types, out-of-range values
 * and unknown names (with the closest known one) are an `ERR_SSE_INVALID_OPTION` at that call.
 */
import { SseError } from './errors.js';
import type { Serializer } from './frame.js';
import type { StreamGroup } from './group.js';
import type { KeepaliveScheduler } from './keepalive.js';
import type { EventStream } from './stream.js';

/** What to do when a client stops reading and the queue passes `highWaterMark`. */
export type OverflowPolicy = 'close' | 'drop';

/** Reported through `onOverflow` each time the overflow policy acts. */
export interface OverflowInfo {
  /** The policy that acted. */
  policy: OverflowPolicy | 'timeout';
  /** Whole events dropped this time (policy `drop`), or left unsent (policy `close`/timeout). */
  droppedEvents: number;
  /** Bytes that were queued when the policy acted. */
  queuedBytes: number;
}

/** Options of an event stream; every adapter takes the same ones. */
export interface EventStreamOptions {
  /** Status code of the stream response. Default 200 (`EventSource` only accepts 200). */
  status?: number;
  /** Extra response headers. Headers already set on the response (CORS, auth) are kept too. */
  headers?: Record<string, string | number | readonly string[]>;
  /** A `retry:` hint (ms) written as soon as the stream opens. */
  retry?: number;
  /** Heartbeat after this many ms without a write; `false` for none. Default 15000 (8000 on Bun, whose `Bun.serve()` closes a response idle for 10 s). */
  keepalive?: number | false;
  /** The shared timer for heartbeats and timeouts. Default {@link defaultScheduler}. */
  scheduler?: KeepaliveScheduler;
  /** Turns non-string data into text. Default `JSON.stringify`. */
  serialize?: Serializer;
  /**
   * Bound of the outgoing queue while the client is not reading, in bytes (string length for text:
   * exact for ASCII). Default 262144 (256 KiB).
   */
  highWaterMark?: number;
  /**
   * Past `highWaterMark`: `'close'` ends the stream (the client reconnects and, with a hub, resumes
   * from history) or `'drop'` drops whole oldest queued events. Default `'close'`.
   */
  overflow?: OverflowPolicy;
  /**
   * A client that has taken nothing for this many ms while data waits for it is stalled: its
   * connection is reset (the kernel frees the unread send buffer at once). A client that reads, however
   * slowly, is never cut for being behind. Default 30000.
   */
  sendTimeout?: number;
  /**
   * Close the stream after this lifetime (ms), jittered to 80–100 % of it, so that clients spread
   * over new instances after a deploy instead of reconnecting all at once. Default: no limit.
   */
  maxAge?: number;
  /** Longest `Last-Event-ID` accepted; longer ones are ignored. Default 512. */
  maxLastEventIdLength?: number;
  /** A group to join (and whose `maxConnections` to respect): a route's, a plugin's or a hub's. */
  group?: StreamGroup;
  /** Called each time the overflow policy or the send timeout acts. */
  onOverflow?: (info: OverflowInfo, stream: EventStream) => void;
  /** Receives errors of this stream that no caller could catch (a failing source, a socket error). */
  onError?: (error: unknown, stream: EventStream) => void;
}

/** The names of {@link EventStreamOptions}, for the unknown-option check. */
export const STREAM_OPTION_NAMES: readonly string[] = [
  'status',
  'headers',
  'retry',
  'keepalive',
  'scheduler',
  'serialize',
  'highWaterMark',
  'overflow',
  'sendTimeout',
  'maxAge',
  'maxLastEventIdLength',
  'group',
  'onOverflow',
  'onError',
];

/** Throws `ERR_SSE_INVALID_OPTION` with `message`. */
export function invalidOption(message: string): never {
  throw new SseError('ERR_SSE_INVALID_OPTION', message);
}

/**
 * Rejects any key of `options` that is not in `known`, naming the closest known one:
 * `unknown option 'keepAlive' — did you mean 'keepalive'?`.
 * @throws {SseError} `ERR_SSE_INVALID_OPTION`.
 */
export function checkOptionNames(options: object, known: readonly string[], where: string): void {
  if (typeof options !== 'object' || options === null) invalidOption(`${where}: options must be an object`);
  for (const key of Object.keys(options)) {
    if (known.includes(key)) continue;
    const near = closest(key, known);
    invalidOption(`${where}: unknown option '${key}'${near === undefined ? '' : ` — did you mean '${near}'?`}`);
  }
}

function closest(name: string, known: readonly string[]): string | undefined {
  const lower = name.toLowerCase();
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(name.length / 3)) + 1;
  for (const candidate of known) {
    const distance = editDistance(lower, candidate.toLowerCase());
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

// Levenshtein distance with adjacent transpositions counted as one edit ('hisotry' → 'history').
function editDistance(a: string, b: string): number {
  const rows: number[][] = [];
  for (let i = 0; i <= a.length; i++) rows.push([i]);
  for (let j = 1; j <= b.length; j++) (rows[0] as number[])[j] = j;
  for (let i = 1; i <= a.length; i++) {
    const row = rows[i] as number[];
    const prev = rows[i - 1] as number[];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min((prev[j] as number) + 1, (row[j - 1] as number) + 1, (prev[j - 1] as number) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d = Math.min(d, ((rows[i - 2] as number[])[j - 2] as number) + 1);
      }
      row[j] = d;
    }
  }
  return (rows[a.length] as number[])[b.length] as number;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// Field values: visible ASCII, space, tab and obs-text; never CR, LF or NUL (header smuggling).
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/** Checks a header name and value as HTTP does (RFC 9110 token and field-value). */
export function checkHeader(name: string, value: unknown): void {
  if (!TOKEN.test(name)) invalidOption(`header ${JSON.stringify(name)}: not a valid header name`);
  for (const v of Array.isArray(value) ? value : [value]) {
    const text = String(v);
    if (/[\r\n\0]/.test(text)) invalidOption(`header ${name} must not contain CR, LF or NUL`);
    if (!FIELD_VALUE.test(text)) invalidOption(`header ${name}: invalid characters in its value`);
  }
}

/**
 * Checks stream options: types and ranges (not names; each factory checks names against its own set).
 * @throws {SseError} `ERR_SSE_INVALID_OPTION`.
 */
export function validateStreamOptions(options: EventStreamOptions): void {
  if (typeof options !== 'object' || options === null) invalidOption('options must be an object');
  const positive = (name: string, value: unknown, allowFalse = false): void => {
    if (value === undefined || (allowFalse && value === false)) return;
    if (typeof value !== 'number' || !(value > 0) || !Number.isFinite(value)) {
      invalidOption(`${name} must be a positive number, got ${String(value)}`);
    }
  };
  positive('keepalive', options.keepalive, true);
  positive('sendTimeout', options.sendTimeout);
  positive('maxAge', options.maxAge);
  positive('highWaterMark', options.highWaterMark);
  positive('maxLastEventIdLength', options.maxLastEventIdLength);
  for (const name of ['serialize', 'onOverflow', 'onError'] as const) {
    if (options[name] !== undefined && typeof options[name] !== 'function') invalidOption(`${name} must be a function`);
  }
  if (options.scheduler !== undefined && typeof options.scheduler?.add !== 'function') {
    invalidOption('scheduler must be a KeepaliveScheduler');
  }
  if (options.group !== undefined && typeof options.group?.admit !== 'function') {
    invalidOption('group must be a StreamGroup');
  }
  if (options.overflow !== undefined && options.overflow !== 'close' && options.overflow !== 'drop') {
    invalidOption(`overflow must be 'close' or 'drop', got ${String(options.overflow)}`);
  }
  // A bad option is the caller's mistake, reported with the option code (not the encoder's field code).
  if (options.retry !== undefined && !(Number.isSafeInteger(options.retry) && options.retry >= 0)) {
    invalidOption(`retry must be a non-negative integer, got ${String(options.retry)}`);
  }
  if (
    options.status !== undefined &&
    !(Number.isInteger(options.status) && options.status >= 200 && options.status <= 599)
  ) {
    invalidOption(`status must be an HTTP status from 200 to 599, got ${String(options.status)}`);
  }
  if (options.headers !== undefined) {
    if (typeof options.headers !== 'object' || options.headers === null) invalidOption('headers must be an object');
    for (const [name, value] of Object.entries(options.headers)) checkHeader(name, value);
  }
}
