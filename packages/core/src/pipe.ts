/**
 * Piping a source into a stream: items are pulled only when the stream has room (a slow client paces
 * the source instead of growing a queue), the source is stopped when the client leaves, and a source
 * that fails — with anything at all — ends only its own stream. The promise never rejects.
 */
import { SseError } from './errors.js';
import type { SseEvent } from './frame.js';
import { describeError } from './runtime.js';

/** Anything a stream can pipe: an async iterable, an iterable, a Node `Readable`, a web `ReadableStream`. */
export type Source<T> = AsyncIterable<T> | Iterable<T> | ReadableStream<T>;

/** Options of {@link EventStream.pipe}. */
export interface PipeOptions<T> {
  /** Turns an item into the event to send. Default: the item is the event's `data`. */
  map?: (item: T) => SseEvent;
  /**
   * Shapes the event sent when the source throws, before the stream ends; return `undefined` to send
   * none. Default: none (the error is reported through `onError`).
   */
  errorEvent?: (error: unknown) => SseEvent | undefined;
  /** Close the stream when the source is done. Default true. */
  end?: boolean;
}

/** The part of a stream that piping uses. */
export interface PipeTarget {
  readonly isOpen: boolean;
  readonly needsDrain: boolean;
  ready(): Promise<boolean>;
  send(data: unknown): boolean;
  sendEvent(event: SseEvent): boolean;
  onClose(callback: () => void): () => void;
  close(): void;
}

/** True for anything {@link pipeSource} can read. */
export function isSource(value: unknown): value is Source<unknown> {
  if (value === null || typeof value !== 'object') return false;
  return (
    typeof (value as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function' ||
    typeof (value as Iterable<unknown>)[Symbol.iterator] === 'function' ||
    typeof (value as ReadableStream<unknown>).getReader === 'function'
  );
}

/** Sends every item of `source` to `target`; see {@link EventStream.pipe}. Never rejects. */
export async function pipeSource<T>(
  target: PipeTarget,
  source: Source<T>,
  options: PipeOptions<T>,
  report: (error: unknown) => void,
): Promise<void> {
  let iterator: AsyncIterator<T> | Iterator<T>;
  try {
    iterator = toIterator(source);
  } catch (err) {
    report(new SseError('ERR_SSE_SOURCE', `cannot read this source: ${describeError(err)}`, { cause: err }));
    target.close();
    return;
  }
  let finished = false;
  const stop = (): void => {
    if (finished) return;
    finished = true;
    // Don't wait: an async generator parked in `await` queues the return behind it.
    Promise.resolve()
      .then(() => iterator.return?.())
      .catch(report);
  };
  const offClose = target.onClose(stop);
  try {
    while (target.isOpen) {
      if (target.needsDrain && !(await target.ready())) break;
      const step = await iterator.next();
      if (step.done) {
        finished = true;
        break;
      }
      if (!target.isOpen) break;
      if (options.map) target.sendEvent(options.map(step.value));
      else target.send(step.value);
    }
    if (finished && options.end !== false) target.close();
  } catch (err) {
    finished = true;
    // Stopped because the client left: a destroyed Readable then rejects its pending read with a
    // premature-close error, which is our doing, not the source's failure.
    if (!target.isOpen) return;
    if (options.errorEvent) {
      try {
        const event = options.errorEvent(err);
        if (event) target.sendEvent(event);
      } catch (shapeError) {
        report(shapeError);
      }
    }
    report(new SseError('ERR_SSE_SOURCE', `the piped source failed: ${describeError(err)}`, { cause: err }));
    target.close();
  } finally {
    offClose();
    if (!finished) stop();
  }
}

/**
 * Stops a source that will never be read: `cancel()` on a web stream, `destroy()` on a Node stream,
 * `return()` on an iterator. Never throws.
 */
export function stopSource(source: Source<unknown>): void {
  try {
    const iterator = toIterator(source);
    Promise.resolve()
      .then(() => iterator.return?.())
      .catch(() => {});
  } catch {
    // Not a source: nothing to stop.
  }
}

function toIterator<T>(source: Source<T>): AsyncIterator<T> | Iterator<T> {
  // Web streams and Node Readables are async iterable too, but their iterators queue `return()` behind a
  // pending `next()` (as the streams spec and Node's async-generator iterator require): a source that
  // went quiet would never be stopped when the client leaves. So they get iterators whose `return()`
  // cancels or destroys at once.
  const web = source as ReadableStream<T>;
  if (typeof web.getReader === 'function') {
    const reader = web.getReader();
    return {
      next: () => reader.read() as Promise<IteratorResult<T>>,
      return: async () => {
        await reader.cancel();
        return { done: true, value: undefined };
      },
    };
  }
  const asyncIterable = source as AsyncIterable<T>;
  if (typeof asyncIterable[Symbol.asyncIterator] === 'function') {
    const iterator = asyncIterable[Symbol.asyncIterator]();
    const readable = source as { destroy?: unknown; pipe?: unknown };
    if (typeof readable.destroy !== 'function' || typeof readable.pipe !== 'function') return iterator;
    const destroy = readable.destroy.bind(source) as () => void;
    return {
      next: () => iterator.next(),
      return: async () => {
        destroy();
        return { done: true, value: undefined };
      },
    };
  }
  const iterable = source as Iterable<T>;
  if (typeof iterable[Symbol.iterator] === 'function') return iterable[Symbol.iterator]();
  throw new TypeError('expected an AsyncIterable, an Iterable, a Node Readable or a web ReadableStream');
}
