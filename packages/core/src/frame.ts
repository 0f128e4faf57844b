/**
 * The encoder: one event in, one spec-exact `text/event-stream` frame out (WHATWG HTML §9.2.6).
 *
 * Clients split lines on CRLF, CR and LF alike, so a value holding any of them would end its line early
 * and let the rest be read as a new field. `data` and `comment` are therefore split into several lines;
 * `event` and `id` cannot be split, so they are refused. Every field is written `name: value` with one
 * space, because clients strip exactly one leading space: a value that starts with a space survives.
 */
import { SseError } from './errors.js';
import { describeError, text as textOf } from './runtime.js';

/** One server-sent event, the shape Hono's `streamSSE` and most SSE libraries use. */
export interface SseEvent<T = unknown> {
  /** Strings go out as they are; anything else through the serializer (default `JSON.stringify`). */
  data?: T;
  /** The event type (`addEventListener(type)` on the client). No CR or LF. */
  event?: string;
  /** Sets the client's last event id, sent back as `Last-Event-ID` on reconnect. No CR, LF or NUL. */
  id?: string;
  /** Reconnection delay hint in milliseconds: a non-negative integer. */
  retry?: number;
  /** A comment line (ignored by clients; used for heartbeats and padding). */
  comment?: string;
}

/** Turns a non-string `data` value into a string. */
export type Serializer = (value: unknown) => string;

const LINE_BREAK = /\r\n|\r|\n/;
// `event` may not hold CR or LF; `id` may not hold those nor NUL (clients ignore such an id).
const BAD_EVENT = /[\r\n]/;
const BAD_ID = /[\r\n\0]/;

/** The heartbeat frame: a comment line, ignored by every client, that keeps proxies from timing out. */
export const HEARTBEAT = ':\n\n';

/**
 * Encodes one event into a frame string ending in a blank line.
 *
 * @throws {SseError} `ERR_SSE_INVALID_FIELD` for CR/LF in `event`/`id`, NUL in `id`, or a `retry` that
 * is not a non-negative integer; `ERR_SSE_NO_DATA` for an event with no field at all;
 * `ERR_SSE_SERIALIZE` when the serializer fails. Nothing is written when it throws.
 */
export function encode(event: SseEvent, serialize: Serializer = JSON.stringify): string {
  let frame = '';
  if (event.comment !== undefined) frame = encodeCommentLines(event.comment);
  if (event.event !== undefined) {
    checkField('event', event.event, BAD_EVENT);
    frame += `event: ${event.event}\n`;
  }
  if (event.id !== undefined) {
    checkField('id', event.id, BAD_ID);
    frame += `id: ${event.id}\n`;
  }
  if (event.retry !== undefined) frame += `retry: ${checkRetry(event.retry)}\n`;
  if (event.data !== undefined) {
    frame += encodeDataLines(serializeData(event.data, serialize));
  } else if (frame === '') {
    throw new SseError('ERR_SSE_NO_DATA', 'an event needs data or at least one other field');
  }
  return `${frame}\n`;
}

/**
 * Encodes `data` as an unnamed event with optional `event` and `id`: the hot path of `send()` and
 * hub publishing, without building an event object.
 */
export function encodeData(
  data: unknown,
  event: string | undefined,
  id: string | undefined,
  serialize: Serializer = JSON.stringify,
): string {
  if (data === undefined) {
    throw new SseError('ERR_SSE_NO_DATA', 'data is undefined; send null or a string to send an empty event');
  }
  let frame = '';
  if (event !== undefined) {
    checkField('event', event, BAD_EVENT);
    frame = `event: ${event}\n`;
  }
  if (id !== undefined) {
    checkField('id', id, BAD_ID);
    frame += `id: ${id}\n`;
  }
  return `${frame}${encodeDataLines(serializeData(data, serialize))}\n`;
}

/** Encodes a comment frame (one `:` line per line of text). */
export function encodeComment(text: string): string {
  return `${encodeCommentLines(String(text))}\n`;
}

/** Encodes a `retry:` frame. @throws {SseError} `ERR_SSE_INVALID_FIELD` unless a non-negative integer. */
export function encodeRetry(ms: number): string {
  return `retry: ${checkRetry(ms)}\n\n`;
}

/** Validates an event id the way {@link encode} does, without encoding anything. */
export function assertValidId(id: string): void {
  checkField('id', id, BAD_ID);
}

/** Validates an event type the way {@link encode} does. */
export function assertValidEventName(name: string): void {
  checkField('event', name, BAD_EVENT);
}

/**
 * The text of an event's data: strings as they are, bytes as UTF-8, anything else through `serialize`.
 * `send()`, `publish()` and every encoder share it, so the same data gives the same wire bytes.
 * @throws {SseError} `ERR_SSE_SERIALIZE` when the serializer throws or returns something else than a string.
 */
export function serializeData(data: unknown, serialize: Serializer = JSON.stringify): string {
  if (typeof data === 'string') return data;
  if (data instanceof Uint8Array) return textOf(data);
  let text: unknown;
  try {
    text = serialize(data);
  } catch (cause) {
    throw new SseError('ERR_SSE_SERIALIZE', `could not serialize data: ${describeError(cause)}`, { cause });
  }
  if (typeof text !== 'string') {
    throw new SseError('ERR_SSE_SERIALIZE', `the serializer returned ${typeof text}, not a string`);
  }
  return text;
}

function encodeDataLines(text: string): string {
  // Most payloads are one line: skip the split (and its array) when there is nothing to split.
  if (text.indexOf('\n') === -1 && text.indexOf('\r') === -1) return `data: ${text}\n`;
  const lines = text.split(LINE_BREAK);
  let out = '';
  for (let i = 0; i < lines.length; i++) out += `data: ${lines[i]}\n`;
  return out;
}

function encodeCommentLines(text: string): string {
  const lines = text.split(LINE_BREAK);
  let out = '';
  for (let i = 0; i < lines.length; i++) out += lines[i] === '' ? ':\n' : `: ${lines[i]}\n`;
  return out;
}

function checkField(name: 'event' | 'id', value: string, bad: RegExp): void {
  if (typeof value !== 'string') {
    throw new SseError('ERR_SSE_INVALID_FIELD', `${name} must be a string, got ${typeof value}`);
  }
  if (bad.test(value)) {
    const what = name === 'id' ? 'CR, LF or NUL' : 'CR or LF';
    throw new SseError('ERR_SSE_INVALID_FIELD', `${name} must not contain ${what}: ${JSON.stringify(value)}`);
  }
}

function checkRetry(ms: number): number {
  if (!Number.isSafeInteger(ms) || ms < 0) {
    throw new SseError('ERR_SSE_INVALID_FIELD', `retry must be a non-negative integer, got ${String(ms)}`);
  }
  return ms;
}
