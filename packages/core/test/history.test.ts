/**
 * History, the replay ring under the memory backplane. It is a pure data structure, so it is tested
 * directly: bounds by size and age, contiguous sequence numbers, `after()`, topic-aware gaps, custom ids.
 * A fast-check model checks every answer of `after()` against a plain list of everything pushed.
 */
import { History, SseError } from '@ssekit/core';
import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';

interface Msg {
  readonly name: string;
  readonly topics: readonly string[];
}

const msg = (name: string, ...topics: string[]): Msg => ({ name, topics });
const names = (messages: readonly Msg[] | undefined): string[] | undefined => messages?.map((m) => m.name);

/** Pushes messages with contiguous seqs from `first`; returns the last seq. */
function fill(history: History<Msg>, first: number, messages: Msg[]): number {
  for (const [i, m] of messages.entries()) history.push(first + i, m);
  return first + messages.length - 1;
}

afterEach(() => {
  vi.useRealTimers();
});

describe('History bounds', () => {
  it('keeps the last `size` messages', () => {
    const history = new History<Msg>({ size: 3 });
    const last = fill(
      history,
      1,
      ['m1', 'm2', 'm3', 'm4', 'm5'].map((n) => msg(n, 't')),
    );
    expect(history.length).toBe(3);
    expect(history.oldest()?.name).toBe('m3');
    expect(names(history.after(2, ['t'], last))).toEqual(['m3', 'm4', 'm5']);
    // m2 was evicted: a client that saw only m1 missed it.
    expect(history.after(1, ['t'], last)).toBeUndefined();
    expect(history.after(0, ['t'], last)).toBeUndefined();
  });

  it('defaults to 1000 messages', () => {
    const history = new History<Msg>();
    const last = fill(
      history,
      1,
      Array.from({ length: 1005 }, (_, i) => msg(`m${i + 1}`, 't')),
    );
    expect(history.length).toBe(1000);
    expect(history.oldest()?.name).toBe('m6');
    expect(history.after(5, ['t'], last)).toHaveLength(1000);
    expect(history.after(4, ['t'], last)).toBeUndefined();
  });

  it('drops messages older than `ttl` (on push and on read)', () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const t0 = new Date('2030-01-01T00:00:00Z').getTime();
    vi.setSystemTime(t0);
    const history = new History<Msg>({ size: 100, ttl: 1000 });
    history.push(1, msg('m1', 't'));
    vi.setSystemTime(t0 + 600);
    history.push(2, msg('m2', 't'));
    // Exactly ttl old is still held.
    vi.setSystemTime(t0 + 1000);
    expect(names(history.after(0, ['t'], 2))).toEqual(['m1', 'm2']);
    vi.setSystemTime(t0 + 1001);
    expect(history.after(0, ['t'], 2)).toBeUndefined();
    expect(names(history.after(1, ['t'], 2))).toEqual(['m2']);
    expect(history.length).toBe(1);
    expect(history.oldest()?.name).toBe('m2');

    // A push expires too: m2 is gone once m3 arrives past its age.
    vi.setSystemTime(t0 + 1700);
    history.push(3, msg('m3', 't'));
    expect(history.length).toBe(1);
    expect(history.after(1, ['t'], 3)).toBeUndefined();
    expect(names(history.after(2, ['t'], 3))).toEqual(['m3']);

    // Everything expired: nothing is held, and a client that saw the last message missed nothing.
    vi.setSystemTime(t0 + 5000);
    expect(history.after(3, ['t'], 3)).toEqual([]);
    expect(history.length).toBe(0);
    expect(history.oldest()).toBeUndefined();
    expect(history.after(2, ['t'], 3)).toBeUndefined();
    // Sequence numbers go on after an empty spell.
    history.push(4, msg('m4', 't'));
    expect(names(history.after(3, ['t'], 4))).toEqual(['m4']);
  });

  it('applies size and ttl together', () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const t0 = Date.UTC(2030, 0, 1);
    vi.setSystemTime(t0);
    const history = new History<Msg>({ size: 2, ttl: 100 });
    fill(history, 1, [msg('m1', 't'), msg('m2', 't'), msg('m3', 't')]);
    expect(names(history.after(1, ['t'], 3))).toEqual(['m2', 'm3']);
    vi.setSystemTime(t0 + 101);
    expect(history.after(2, ['t'], 3)).toBeUndefined();
  });

  it('refuses bad bounds with ERR_SSE_INVALID_OPTION', () => {
    for (const options of [{ size: -1 }, { size: 1.5 }, { size: Number.NaN }, { ttl: -1 }, { ttl: Infinity }]) {
      let error: unknown;
      try {
        new History<Msg>(options);
      } catch (err) {
        error = err;
      }
      expect(error).toBeInstanceOf(SseError);
      expect((error as SseError).code).toBe('ERR_SSE_INVALID_OPTION');
    }
  });
});

describe('History.after', () => {
  it('indexes contiguous seqs from any start, across the ring wrapping around', () => {
    const history = new History<Msg>({ size: 4 });
    const last = fill(
      history,
      1000,
      Array.from({ length: 11 }, (_, i) => msg(`s${1000 + i}`, 't')),
    );
    expect(last).toBe(1010);
    expect(names(history.after(1006, ['t'], last))).toEqual(['s1007', 's1008', 's1009', 's1010']);
    expect(names(history.after(1008, ['t'], last))).toEqual(['s1009', 's1010']);
    expect(history.after(1010, ['t'], last)).toEqual([]);
    expect(history.after(1005, ['t'], last)).toBeUndefined();
  });

  it('returns exactly the messages after seq, for the given topics, up to `upTo`', () => {
    const history = new History<Msg>({ size: 10 });
    fill(history, 1, [
      msg('a1', 'a'),
      msg('b2', 'b'),
      msg('ab3', 'a', 'b'),
      msg('c4', 'c'),
      msg('a5', 'a'),
      msg('b6', 'b'),
    ]);
    expect(names(history.after(0, ['a'], 6))).toEqual(['a1', 'ab3', 'a5']);
    expect(names(history.after(1, ['a'], 6))).toEqual(['ab3', 'a5']);
    // A message on two wanted topics comes once.
    expect(names(history.after(0, ['a', 'b'], 6))).toEqual(['a1', 'b2', 'ab3', 'a5', 'b6']);
    // upTo is inclusive: later messages reach the client live instead.
    expect(names(history.after(0, ['a', 'b'], 3))).toEqual(['a1', 'b2', 'ab3']);
    expect(names(history.after(2, ['b', 'c'], 4))).toEqual(['ab3', 'c4']);
    expect(history.after(0, ['z'], 6)).toEqual([]);
    expect(history.after(0, [], 6)).toEqual([]);
  });

  it('reports a gap only for the client whose topics lost a message after its seq', () => {
    const history = new History<Msg>({ size: 3 });
    history.push(1, msg('a1', 'a'));
    // Topic B's traffic pushes a1 and b2 out.
    fill(history, 2, [msg('b2', 'b'), msg('b3', 'b'), msg('b4', 'b'), msg('b5', 'b')]);
    expect(names(history.after(4, ['b'], 5))).toEqual(['b5']);
    // A topic-A client that saw a1 missed nothing of A, though old messages were evicted.
    expect(history.after(1, ['a'], 5)).toEqual([]);
    // Nor does a client that came in after a1, when no A message was lost after it.
    expect(history.after(1, ['a', 'c'], 5)).toEqual([]);
    // One that had not seen a1 did miss it.
    expect(history.after(0, ['a'], 5)).toBeUndefined();
    // A topic-B client at seq 1 missed b2.
    expect(history.after(1, ['b'], 5)).toBeUndefined();
    expect(history.after(1, ['a', 'b'], 5)).toBeUndefined();

    // Now an A message after the client's seq is published and evicted: that is a gap for it.
    history.push(6, msg('a6', 'a'));
    expect(names(history.after(1, ['a'], 6))).toEqual(['a6']);
    fill(history, 7, [msg('b7', 'b'), msg('b8', 'b'), msg('b9', 'b')]);
    expect(history.after(1, ['a'], 9)).toBeUndefined();
    expect(history.after(6, ['a'], 9)).toEqual([]);
  });

  it('stays safe past the tracked-topics limit: it may report a gap that was not one, never miss one', () => {
    const history = new History<Msg>({ size: 1 });
    const last = fill(
      history,
      1,
      Array.from({ length: 10_003 }, (_, i) => msg(`m${i + 1}`, `topic-${i + 1}`)),
    );
    expect(history.after(last - 1, [`topic-${last}`], last)?.map((m) => m.name)).toEqual([`m${last}`]);
    // Every evicted topic, old or new, reports its loss.
    expect(history.after(0, ['topic-1'], last)).toBeUndefined();
    expect(history.after(9_000, ['topic-9001'], last)).toBeUndefined();
    expect(history.after(last - 2, [`topic-${last - 1}`], last)).toBeUndefined();
  });
});

describe('History custom ids', () => {
  it('maps a caller-chosen id to its seq, and forgets it on eviction', () => {
    const history = new History<Msg>({ size: 2 });
    history.push(1, msg('m1', 't'), 'order-1');
    history.push(2, msg('m2', 't'));
    expect(history.seqOfCustomId('order-1')).toBe(1);
    expect(history.seqOfCustomId('nope')).toBeUndefined();
    history.push(3, msg('m3', 't'), 'order-3');
    expect(history.seqOfCustomId('order-1')).toBeUndefined();
    expect(history.seqOfCustomId('order-3')).toBe(3);
  });

  it('keeps the newest seq of a reused id when the older one is evicted', () => {
    const history = new History<Msg>({ size: 2 });
    history.push(1, msg('m1', 't'), 'dup');
    history.push(2, msg('m2', 't'), 'dup');
    expect(history.seqOfCustomId('dup')).toBe(2);
    history.push(3, msg('m3', 't'));
    expect(history.seqOfCustomId('dup')).toBe(2);
    history.push(4, msg('m4', 't'));
    expect(history.seqOfCustomId('dup')).toBeUndefined();
  });

  it('forgets an id when its message expires', () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const t0 = Date.UTC(2030, 0, 1);
    vi.setSystemTime(t0);
    const history = new History<Msg>({ size: 10, ttl: 50 });
    history.push(1, msg('m1', 't'), 'x');
    vi.setSystemTime(t0 + 51);
    history.push(2, msg('m2', 't'));
    expect(history.seqOfCustomId('x')).toBeUndefined();
  });
});

describe('History with size 0', () => {
  it('holds nothing, yet knows whether a client missed something of its topics', () => {
    const history = new History<Msg>({ size: 0 });
    const last = fill(history, 1, [msg('a1', 'a'), msg('b2', 'b'), msg('b3', 'b')]);
    expect(history.length).toBe(0);
    expect(history.oldest()).toBeUndefined();
    // Up to date: nothing to replay, no gap.
    expect(history.after(last, ['a', 'b'], last)).toEqual([]);
    // Behind, but on a topic that lost nothing since: no gap.
    expect(history.after(1, ['a'], last)).toEqual([]);
    // Behind on a topic that lost messages: a gap.
    expect(history.after(1, ['b'], last)).toBeUndefined();
    expect(history.after(0, ['a'], last)).toBeUndefined();
    history.push(4, msg('c4', 'c'), 'custom');
    expect(history.seqOfCustomId('custom')).toBeUndefined();
  });
});

describe('History against a model', () => {
  const topicSet = fc.subarray(['a', 'b', 'c'], { minLength: 1 });
  const pushArb = fc.record({
    topics: topicSet,
    customId: fc.option(fc.constantFrom('x', 'y', 'z'), { nil: undefined }),
  });

  it('answers after(), oldest(), length and seqOfCustomId() like a plain list of everything pushed', () => {
    fc.assert(
      fc.property(
        fc.nat({ max: 6 }),
        fc.integer({ min: 1, max: 1_000_000 }),
        fc.array(pushArb, { maxLength: 25 }),
        (size, first, pushes) => {
          const history = new History<Msg & { seq: number }>({ size });
          const all = pushes.map((p, i) => ({ seq: first + i, name: `m${first + i}`, ...p }));
          for (const m of all) history.push(m.seq, m, m.customId);
          const last = first + all.length - 1;
          const held = size === 0 ? [] : all.slice(-size);
          const evicted = all.slice(0, all.length - held.length);

          expect(history.length).toBe(held.length);
          expect(history.oldest()).toBe(held[0]);
          for (const id of ['x', 'y', 'z']) {
            const newest = all.filter((m) => m.customId === id).at(-1);
            expect(history.seqOfCustomId(id)).toBe(newest && held.includes(newest) ? newest.seq : undefined);
          }
          const wanted = [['a'], ['b'], ['c'], ['a', 'b'], ['a', 'b', 'c']];
          for (let seq = first - 1; seq <= last; seq++) {
            for (const topics of wanted) {
              const on = (m: Msg): boolean => m.topics.some((t) => topics.includes(t));
              const gap = evicted.some((m) => m.seq > seq && on(m));
              for (const upTo of [seq, Math.min(seq + 2, last), last]) {
                const expected = gap ? undefined : held.filter((m) => m.seq > seq && m.seq <= upTo && on(m));
                expect(history.after(seq, topics, upTo)).toEqual(expected);
              }
            }
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});
