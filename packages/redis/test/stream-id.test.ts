import { compareStreamIds, isStreamId } from '@ssekit/redis';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

const MAX = (1n << 64n) - 1n;
const part = fc.bigInt({ min: 0n, max: MAX });
const id = fc.tuple(part, part).map(([ms, seq]) => ({ text: `${ms}-${seq}`, ms, seq }));

describe('stream ids', () => {
  it('orders ids exactly as Redis does (ms, then seq, as unsigned 64-bit numbers)', () => {
    fc.assert(
      fc.property(id, id, (a, b) => {
        const expected = a.ms === b.ms ? Math.sign(Number(a.seq - b.seq)) : Math.sign(Number(a.ms - b.ms));
        expect(Math.sign(compareStreamIds(a.text, b.text))).toBe(expected);
      }),
      { numRuns: 2000 },
    );
  });

  it('accepts every canonical id up to 2^64-1 in both parts', () => {
    fc.assert(fc.property(id, (a) => isStreamId(a.text)));
    expect(isStreamId(`${MAX}-${MAX}`)).toBe(true);
    expect(isStreamId('0-0')).toBe(true);
  });

  it('refuses anything else: out of range, leading zeros, signs, spaces, other shapes', () => {
    for (const bad of [
      `${MAX + 1n}-0`,
      `0-${MAX + 1n}`,
      '01-0',
      '1-00',
      '-1-0',
      '+1-0',
      ' 1-0',
      '1-0 ',
      '1',
      '1-',
      '-1',
      '1-2-3',
      '1.5-0',
      '',
      'abc',
      '1718000000000-0\n',
    ]) {
      expect(isStreamId(bad), bad).toBe(false);
    }
  });
});
