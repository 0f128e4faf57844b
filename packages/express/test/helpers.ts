// Shared by the express tests: both Express majors, and the shared clients of core's test support.
import express5 from 'express';
// @ts-expect-error express4 is an npm alias of express@4, typed by the same @types/express.
import express4Untyped from 'express4';

export const express4 = express4Untyped as typeof express5;

/** Both supported majors, for `describe.each`. */
export const versions = [
  { name: 'express 5', express: express5 },
  { name: 'express 4', express: express4 },
] as const;

export {
  type Client,
  closeAll,
  connect,
  rawGet,
  type Served,
  serve,
  until,
} from '../../core/test/support/clients.js';
