/**
 * Every error ssekit throws or reports is an {@link SseError} with a stable `code`, so callers can
 * branch on `err.code` instead of parsing messages. Errors that map to an HTTP answer carry `status`
 * (and `statusCode`, the name Fastify reads) and optional `headers`, which Express's finalhandler and
 * Fastify's error handler both apply.
 */
export type SseErrorCode =
  /** `event`/`id` holds CR, LF (or NUL for `id`), or `retry` is not a non-negative integer. */
  | 'ERR_SSE_INVALID_FIELD'
  /** An event with neither `data` nor any other field. */
  | 'ERR_SSE_NO_DATA'
  /** The serializer threw or returned something other than a string. */
  | 'ERR_SSE_SERIALIZE'
  /** An option passed to a factory is out of range or of the wrong type. */
  | 'ERR_SSE_INVALID_OPTION'
  /** The response had already started when a stream was opened on it. */
  | 'ERR_SSE_HEADERS_SENT'
  /** The connection limit (`maxConnections`) was reached: answered 503 with `Retry-After`. */
  | 'ERR_SSE_TOO_MANY_CONNECTIONS'
  /** The client did not read: the outgoing queue passed `highWaterMark` (policy `close`). */
  | 'ERR_SSE_OVERFLOW'
  /** The socket did not drain within `sendTimeout`. */
  | 'ERR_SSE_SEND_TIMEOUT'
  /** A piped source (iterable, Readable, ReadableStream) threw. */
  | 'ERR_SSE_SOURCE'
  /** A topic name is empty or not a string, or the `topics` option refused the request. */
  | 'ERR_SSE_INVALID_TOPIC'
  /** The request may not subscribe (the `topics` option refused it): 403 unless the error says otherwise. */
  | 'ERR_SSE_FORBIDDEN'
  /** The client does not accept `text/event-stream` and nothing else serves this route: 406. */
  | 'ERR_SSE_NOT_ACCEPTABLE'
  /**
   * A fault in the app's code or its services before the stream opened (a `topics` function that
   * threw a plain error, returned bad topics, a database that is down). Reported to the app; the
   * client gets a stream that says only this code and asks it to come back later.
   */
  | 'ERR_SSE_FAULT'
  /** The backplane failed to publish, replay or deliver. */
  | 'ERR_SSE_BACKPLANE'
  /** The hub or backplane was closed. */
  | 'ERR_SSE_CLOSED';

/** Options for {@link SseError}. */
export interface SseErrorOptions {
  /** HTTP status this error answers with, when it happens before the stream opened. */
  status?: number;
  /** Extra response headers (e.g. `Retry-After`) for that answer. */
  headers?: Record<string, string>;
  /** The underlying error. */
  cause?: unknown;
}

/** The one error class of ssekit. `code` is stable; `message` is for humans. */
export class SseError extends Error {
  override readonly name = 'SseError';
  readonly code: SseErrorCode;
  /** HTTP status, when the error answers a request (e.g. 503, 403, 406). */
  readonly status: number | undefined;
  /** Same as `status`: the property Fastify's error handler reads. */
  readonly statusCode: number | undefined;
  /** Headers for that answer (e.g. `Retry-After`); applied by Express's finalhandler and by Fastify. */
  readonly headers: Record<string, string> | undefined;
  /** Client errors (4xx/503) are safe to show: Express's finalhandler reads `expose`. */
  readonly expose: boolean;

  constructor(code: SseErrorCode, message: string, options: SseErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.status = options.status;
    this.statusCode = options.status;
    this.headers = options.headers;
    this.expose = options.status !== undefined && (options.status < 500 || options.status === 503);
  }
}

/** True when `err` is an {@link SseError}, optionally with the given code. */
export function isSseError(err: unknown, code?: SseErrorCode): err is SseError {
  return err instanceof SseError && (code === undefined || err.code === code);
}

/**
 * A deliberate refusal, or `undefined` for a fault. Refusals are `false` (403), an {@link SseError}
 * with a `status`, and errors that carry a 4xx `status`/`statusCode` (`http-errors`,
 * `@fastify/error`, `@fastify/sensible`): those answer with their status and `headers` (a 401 with
 * `WWW-Authenticate`). Anything else thrown or rejected — a `TypeError`, a database error, a Symbol —
 * is a fault: never answered as a refusal, and its message never reaches the client.
 */
export function refusalOf(reason: unknown): SseError | undefined {
  if (reason === false) {
    return new SseError('ERR_SSE_FORBIDDEN', 'this request may not subscribe to these topics', { status: 403 });
  }
  if (reason instanceof SseError) return reason.status === undefined ? undefined : reason;
  if (typeof reason !== 'object' || reason === null) return undefined;
  const source = reason as { status?: unknown; statusCode?: unknown; headers?: unknown; message?: unknown };
  const given = typeof source.status === 'number' ? source.status : source.statusCode;
  if (typeof given !== 'number' || !Number.isInteger(given) || given < 400 || given > 499) return undefined;
  const headers =
    typeof source.headers === 'object' && source.headers !== null
      ? (source.headers as Record<string, string>)
      : undefined;
  const message =
    typeof source.message === 'string' && source.message !== ''
      ? source.message
      : 'this request may not subscribe to these topics';
  return new SseError('ERR_SSE_FORBIDDEN', message, { status: given, headers, cause: reason });
}
