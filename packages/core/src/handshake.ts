/**
 * What the first bytes of a stream are, and what a refusal is: the SSE response headers, and `204`,
 * the one answer that makes `EventSource` stop reconnecting for good.
 */
import { encodeRetry } from './frame.js';
import { allStreams } from './group.js';
import type { EventStreamOptions } from './options.js';
import { EventStream } from './stream.js';
import type { HeaderList, Transport } from './transport.js';

/** The media type of Server-Sent Events. */
export const EVENT_STREAM = 'text/event-stream';

/**
 * The headers a stream opens with: the content type; `Cache-Control` and `X-Accel-Buffering` unless
 * the app chose its own (so proxies neither cache nor buffer it); `Connection: keep-alive` where the
 * protocol allows it; then the caller's `headers`, which replace any of ours of the same name.
 */
export function streamHeaders(
  transport: Transport,
  headers: Record<string, string | number | readonly string[]> | undefined,
): HeaderList {
  // The caller's headers replace ours of the same name.
  const given = headers === undefined ? undefined : new Set(Object.keys(headers).map((name) => name.toLowerCase()));
  const ours = (name: string): boolean => !transport.hasHeader(name) && given?.has(name) !== true;
  const head: HeaderList = [];
  if (given?.has('content-type') !== true) head.push(['Content-Type', `${EVENT_STREAM}; charset=utf-8`]);
  if (ours('cache-control')) head.push(['Cache-Control', 'no-cache, no-transform']);
  if (ours('x-accel-buffering')) head.push(['X-Accel-Buffering', 'no']);
  if (transport.connectionHeaders && given?.has('connection') !== true) head.push(['Connection', 'keep-alive']);
  if (headers !== undefined) {
    for (const name of Object.keys(headers)) {
      const value = headers[name];
      if (Array.isArray(value)) for (const v of value) head.push([name, String(v)]);
      else head.push([name, String(value)]);
    }
  }
  return head;
}

/** What {@link openStream} needs to know of the request. */
export interface OpenRequest {
  /** The request method: a `HEAD` answer is the headers alone. */
  readonly method: string;
  /** The client's last event id, already read and checked. */
  readonly lastEventId: string | undefined;
}

/**
 * Opens an event stream on `transport`: sends the status and SSE headers at once, joins the stream to
 * its group, and writes the `retry` hint. Every way of opening a stream — `createEventStream()`, the
 * route behind each adapter — comes through here; each admits the stream to its groups first (503
 * when one is full), before it connects the transport.
 */
export function openStream(transport: Transport, options: EventStreamOptions, request: OpenRequest): EventStream {
  transport.open(options.status ?? 200, streamHeaders(transport, options.headers));
  const stream = new EventStream(transport, options, request.lastEventId);
  if (request.method === 'HEAD') {
    // A HEAD answer has no body: the headers are the whole answer, so the stream ends at once.
    stream.close();
    return stream;
  }
  allStreams.add(stream);
  options.group?.add(stream);
  if (options.retry !== undefined) stream.enqueue(encodeRetry(options.retry), 0);
  // The client may already be gone (it left while middleware ran).
  if (transport.settled) stream.close();
  return stream;
}
