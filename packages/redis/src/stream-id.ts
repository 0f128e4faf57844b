/**
 * Redis stream entry ids (`<ms>-<seq>`, two unsigned 64-bit integers) as the SSE event ids: checking
 * them and ordering them. Ids are compared as numbers without BigInt or floats: both parts are
 * canonical decimal strings, so a longer part is a larger number and equal lengths compare as text.
 */

const STREAM_ID = /^(0|[1-9][0-9]{0,19})-(0|[1-9][0-9]{0,19})$/;
const MAX_PART = '18446744073709551615';

/** The id before every entry: what an empty stream's position is. */
export const ZERO_ID = '0-0';

/**
 * True for a canonical Redis stream entry id: `<ms>-<seq>`, both parts decimal without leading zeros
 * and at most 2^64-1. Anything else (another backplane's id, a truncated or forged one) is unknown.
 */
export function isStreamId(id: string): boolean {
  const match = STREAM_ID.exec(id);
  if (match === null) return false;
  return comparePart(match[1] as string, MAX_PART) <= 0 && comparePart(match[2] as string, MAX_PART) <= 0;
}

/** Orders two valid stream ids: negative when `a` comes first, 0 when equal, positive when after. */
export function compareStreamIds(a: string, b: string): number {
  const da = a.indexOf('-');
  const db = b.indexOf('-');
  return comparePart(a.slice(0, da), b.slice(0, db)) || comparePart(a.slice(da + 1), b.slice(db + 1));
}

function comparePart(a: string, b: string): number {
  if (a.length !== b.length) return a.length - b.length;
  return a < b ? -1 : a > b ? 1 : 0;
}
