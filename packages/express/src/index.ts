/**
 * `@ssekit/express`: Server-Sent Events middleware for Express 4 and 5.
 *
 * ```js
 * import { sse } from '@ssekit/express';
 * app.get('/events', sse(), (req, res) => res.sse.send({ hello: 'world' }));
 * ```
 */
import type { EventStream } from '@ssekit/core';

// What handlers behind sse() reach for most, so that one import does.
export {
  type EventStream,
  type EventStreamOptions,
  isSseError,
  refuse,
  SseError,
  type SseErrorCode,
} from '@ssekit/core';
export { type SseMiddleware, sse } from './middleware.js';
export type { SseMiddlewareOptions, TopicsResult } from './options.js';

declare global {
  // Express's Response (express-serve-static-core, @types/express 4 and 5) extends this global
  // interface: declaration merging here types `res.sse` in every handler.
  namespace Express {
    interface Response {
      /**
       * The open event stream, set by `sse()` before it calls `next()`. Unset only when `sse({
       * negotiate: true })` handed over a request that does not accept `text/event-stream`.
       */
      sse: EventStream;
    }
  }
}
