/**
 * Content negotiation for event streams, done by `@fastify/accepts` (which uses `negotiator`): no
 * hand-written Accept parsing here.
 */
import { EVENT_STREAM } from '@ssekit/core';
import type { FastifyRequest } from 'fastify';

export { EVENT_STREAM };

/**
 * `request.acceptsEventStream(alternatives?)`. Without alternatives: may this client take a stream at
 * all (a missing `Accept` or `*\/*` may). With the route's other types: does the stream win the
 * negotiation. The alternatives are offered first, so a tie (`*\/*`, what `fetch()` sends) goes to
 * them and only a client that asks for `text/event-stream` (what `EventSource` sends) gets the stream.
 */
export function acceptsEventStream(this: FastifyRequest, alternatives?: readonly string[]): boolean {
  const accepts = this.accepts();
  if (alternatives === undefined || alternatives.length === 0) return accepts.type([EVENT_STREAM]) === EVENT_STREAM;
  return accepts.type([...alternatives, EVENT_STREAM]) === EVENT_STREAM;
}
