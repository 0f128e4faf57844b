/** The server variants, in the order of the report. `ceiling` is the one every ratio is taken against. */
export const VARIANTS = [
  { id: 'naive', file: 'naive.js', label: 'naive node:http' },
  { id: 'ceiling', file: 'ceiling.js', label: 'hand-coalesced node:http (ceiling)' },
  { id: 'better-sse', file: 'better-sse.js', label: 'better-sse (channel)' },
  { id: 'fastify-sse', file: 'fastify-sse.js', label: '@fastify/sse' },
  { id: 'ssekit-core', file: 'ssekit-core.js', label: 'ssekit core (node:http)', ssekit: true },
  { id: 'ssekit-express', file: 'ssekit-express.js', label: 'ssekit Express', ssekit: true },
  { id: 'ssekit-fastify', file: 'ssekit-fastify.js', label: 'ssekit Fastify', ssekit: true },
  { id: 'express-hand', file: 'express-hand.js', label: 'hand-written Express' },
  { id: 'fastify-hand', file: 'fastify-hand.js', label: 'hand-written Fastify' },
];

export const CEILING = 'ceiling';
export const NAIVE = 'naive';
