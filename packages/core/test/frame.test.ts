/**
 * The encoder against the wire rules of WHATWG HTML §9.2, checked by decoding its output with a real
 * parser (`eventsource-parser`), with our own `parseEventStream`, and with the real `eventsource`
 * client over a real socket.
 */
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  assertValidEventName,
  assertValidId,
  encode,
  encodeComment,
  encodeData,
  encodeRetry,
  HEARTBEAT,
  isSseError,
  SseError,
  type SseEvent,
} from '@ssekit/core';
import { EventStreamParser, parseEventStream } from '@ssekit/core/testing';
import { EventSource } from 'eventsource';
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';

// ---------------------------------------------------------------------------------------------------
// Decoding helpers: the real parser, fed the way a client is fed (UTF-8 bytes through a TextDecoder).

interface Decoded {
  events: EventSourceMessage[];
  comments: string[];
  retries: number[];
  errors: Error[];
}

function decodeWithEventsourceParser(chunks: Uint8Array[]): Decoded {
  const out: Decoded = { events: [], comments: [], retries: [], errors: [] };
  const parser = createParser({
    onEvent: (event) => out.events.push(event),
    onComment: (comment) => out.comments.push(comment),
    onRetry: (retry) => out.retries.push(retry),
    onError: (error) => out.errors.push(error),
  });
  const decoder = new TextDecoder();
  for (const chunk of chunks) parser.feed(decoder.decode(chunk, { stream: true }));
  parser.feed(decoder.decode());
  return out;
}

const BOM = [0xef, 0xbb, 0xbf];
const startsWithBom = (bytes: Uint8Array): boolean => BOM.every((b, i) => bytes[i] === b);
/** Line breaks as every client reads them: CRLF, CR and LF are each one break. */
const normalise = (text: string): string => text.replace(/\r\n|\r/g, '\n');
const FIELD_LINE = /^(data|event|id|retry): /;

/** A frame must be field lines ending in exactly one blank line: no early blank line, no CR anywhere. */
function expectWellFormed(frame: string): void {
  expect(frame.endsWith('\n\n')).toBe(true);
  expect(frame.includes('\r')).toBe(false);
  for (const line of frame.slice(0, -2).split('\n')) {
    expect(FIELD_LINE.test(line) || line.startsWith(':')).toBe(true);
  }
}

function expectInvalidField(fn: () => unknown): SseError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(SseError);
    expect((err as SseError).code).toBe('ERR_SSE_INVALID_FIELD');
    return err as SseError;
  }
  throw new Error('expected ERR_SSE_INVALID_FIELD, nothing was thrown');
}

function expectCode(fn: () => unknown, code: SseError['code']): SseError {
  try {
    fn();
  } catch (err) {
    expect(isSseError(err, code)).toBe(true);
    expect(err).toBeInstanceOf(SseError);
    return err as SseError;
  }
  throw new Error(`expected ${code}, nothing was thrown`);
}

// ---------------------------------------------------------------------------------------------------
// Arbitraries. fast-check's 'binary' and 'grapheme' units never produce lone surrogates; the tricky
// pieces add every kind of line break, leading spaces, colons, NUL and field look-alikes.

const lineBreak = fc.constantFrom('\r\n', '\r', '\n');
const tricky = fc.constantFrom(
  ' ',
  '  ',
  ':',
  ': ',
  '\0',
  '\t',
  'data: x',
  'id: 1',
  'event: e',
  'retry: 10',
  '\uFEFF',
  '\u2028',
  '\u0085',
  'é',
  'e\u0301',
  '😀',
);
const piece = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 6 }),
  fc.string({ unit: 'grapheme', maxLength: 4 }),
  fc.string({ unit: 'binary-ascii', maxLength: 6 }),
  tricky,
  lineBreak,
);
/** Text with anything a value may hold, line breaks included. */
const anyText = fc.array(piece, { maxLength: 10 }).map((parts) => parts.join(''));
/** Valid `event` values (no CR/LF) and `id` values (no CR/LF/NUL), with leading spaces and colons kept. */
const eventName = anyText.map((s) => s.replace(/[\r\n]/g, ''));
const eventId = anyText.map((s) => s.replace(/[\r\n\0]/g, ''));

const validEvent: fc.Arbitrary<SseEvent<string>> = fc.record(
  { data: anyText, event: eventName, id: eventId, retry: fc.nat(), comment: anyText },
  { requiredKeys: ['data'] },
);

/** Random cut points: the same bytes as a list of chunks (empty chunks allowed). */
function splitAt(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const chunks: Uint8Array[] = [];
  let last = 0;
  for (const p of points) {
    chunks.push(bytes.subarray(last, p));
    last = p;
  }
  chunks.push(bytes.subarray(last));
  return chunks;
}

// ---------------------------------------------------------------------------------------------------

describe('encode: data', () => {
  it('writes strings as they are, one `data: ` line', () => {
    expect(encode({ data: 'hello' })).toBe('data: hello\n\n');
    expect(encode({ data: '{"not":"re-serialized"}' })).toBe('data: {"not":"re-serialized"}\n\n');
  });

  it('serializes other values with JSON.stringify by default', () => {
    expect(encode({ data: { a: 1, b: [true, null] } })).toBe('data: {"a":1,"b":[true,null]}\n\n');
    expect(encode({ data: 42 })).toBe('data: 42\n\n');
    expect(encode({ data: null })).toBe('data: null\n\n');
    expect(encodeData({ x: 'y' }, undefined, undefined)).toBe('data: {"x":"y"}\n\n');
  });

  it('uses a custom serializer for non-strings, and never for strings', () => {
    const calls: unknown[] = [];
    const serialize = (value: unknown): string => {
      calls.push(value);
      return `custom<${JSON.stringify(value)}>`;
    };
    expect(encode({ data: { a: 1 } }, serialize)).toBe('data: custom<{"a":1}>\n\n');
    expect(encodeData([1, 2], 'e', '7', serialize)).toBe('event: e\nid: 7\ndata: custom<[1,2]>\n\n');
    expect(encode({ data: 'plain' }, serialize)).toBe('data: plain\n\n');
    expect(calls).toEqual([{ a: 1 }, [1, 2]]);
  });

  it('splits what the serializer returns on line breaks too', () => {
    expect(encode({ data: { a: 1 } }, () => '{\r\n  "a": 1\r}')).toBe('data: {\ndata:   "a": 1\ndata: }\n\n');
  });

  it('turns a throwing serializer into ERR_SSE_SERIALIZE with the cause', () => {
    const boom = new Error('boom');
    const err = expectCode(
      () =>
        encode({ data: { a: 1 } }, () => {
          throw boom;
        }),
      'ERR_SSE_SERIALIZE',
    );
    expect(err.cause).toBe(boom);
    // The default serializer throws on BigInt and on cycles.
    expectCode(() => encode({ data: { n: 1n } }), 'ERR_SSE_SERIALIZE');
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expectCode(() => encodeData(cyclic, undefined, undefined), 'ERR_SSE_SERIALIZE');
  });

  it('turns a serializer that returns a non-string into ERR_SSE_SERIALIZE', () => {
    expectCode(() => encode({ data: {} }, () => 42 as unknown as string), 'ERR_SSE_SERIALIZE');
    expectCode(() => encode({ data: {} }, () => undefined as unknown as string), 'ERR_SSE_SERIALIZE');
    // JSON.stringify returns undefined for functions and symbols.
    expectCode(() => encode({ data: () => 1 }), 'ERR_SSE_SERIALIZE');
    expectCode(() => encode({ data: Symbol('s') }), 'ERR_SSE_SERIALIZE');
  });

  it('refuses undefined data when no other field is given (ERR_SSE_NO_DATA)', () => {
    expectCode(() => encode({}), 'ERR_SSE_NO_DATA');
    expectCode(() => encode({ data: undefined }), 'ERR_SSE_NO_DATA');
    expectCode(() => encodeData(undefined, 'e', '1'), 'ERR_SSE_NO_DATA');
    // Another field alone is a valid (data-less) block: clients dispatch nothing for it.
    expect(encode({ id: '5' })).toBe('id: 5\n\n');
    expect(encode({ event: 'x' })).toBe('event: x\n\n');
    expect(encode({ retry: 10 })).toBe('retry: 10\n\n');
    expect(encode({ comment: 'c' })).toBe(': c\n\n');
    expect(parseEventStream(encode({ id: '5' }))).toMatchObject({ events: [], lastEventId: '5' });
  });

  it('splits data on CRLF, CR and LF alike into several `data: ` lines', () => {
    expect(encode({ data: 'a\r\nb\rc\nd' })).toBe('data: a\ndata: b\ndata: c\ndata: d\n\n');
    expect(encode({ data: '\r\n\n\r' })).toBe('data: \ndata: \ndata: \ndata: \n\n');
    expect(encode({ data: 'end\n' })).toBe('data: end\ndata: \n\n');
    const { events } = decodeWithEventsourceParser([Buffer.from(encode({ data: 'a\r\nb\rc\nd' }))]);
    expect(events).toEqual([{ id: undefined, event: undefined, data: 'a\nb\nc\nd' }]);
  });

  it("gives '' as one `data: ` line that decodes to an event with data ''", () => {
    const frame = encode({ data: '' });
    expect(frame).toBe('data: \n\n');
    expect(decodeWithEventsourceParser([Buffer.from(frame)]).events).toEqual([
      { id: undefined, event: undefined, data: '' },
    ]);
    expect(parseEventStream(frame).events).toEqual([{ type: 'message', data: '', lastEventId: '' }]);
  });

  it('writes `field: value` with one space, so leading spaces survive', () => {
    const frame = encode({ data: '  two', event: ' one', id: '   three' });
    expect(frame).toBe('event:  one\nid:    three\ndata:   two\n\n');
    expect(parseEventStream(frame).events).toEqual([{ type: ' one', data: '  two', lastEventId: '   three' }]);
    expect(decodeWithEventsourceParser([Buffer.from(frame)]).events).toEqual([
      { event: ' one', id: '   three', data: '  two' },
    ]);
  });

  it('decodes UTF-8 bytes (Uint8Array data) as text', () => {
    expect(encode({ data: new TextEncoder().encode('héllo\nwörld') })).toBe('data: héllo\ndata: wörld\n\n');
  });
});

describe('encode: event, id, retry', () => {
  it('refuses CR or LF in `event`', () => {
    for (const bad of ['a\nb', 'a\rb', 'a\r\nb', '\n', 'x\r']) {
      const err = expectInvalidField(() => encode({ data: 'x', event: bad }));
      expect(err.message).toContain('event');
      expectInvalidField(() => encodeData('x', bad, undefined));
      expectInvalidField(() => assertValidEventName(bad));
    }
    // NUL is harmless in an event type.
    expect(encode({ data: 'x', event: 'a\0b' })).toBe('event: a\0b\ndata: x\n\n');
  });

  it('refuses CR, LF or NUL in `id`', () => {
    for (const bad of ['a\nb', 'a\rb', '\r\n', 'nul\0', '\0']) {
      const err = expectInvalidField(() => encode({ data: 'x', id: bad }));
      expect(err.message).toContain('id');
      expectInvalidField(() => encodeData('x', undefined, bad));
      expectInvalidField(() => assertValidId(bad));
    }
  });

  it('refuses non-strings in `event` and `id` (callers without types)', () => {
    expectInvalidField(() => encode({ data: 'x', event: 5 as unknown as string }));
    expectInvalidField(() => encode({ data: 'x', id: {} as unknown as string }));
  });

  it('accepts retry only as a non-negative integer', () => {
    expect(encode({ retry: 0 })).toBe('retry: 0\n\n');
    expect(encode({ data: 'x', retry: 1500 })).toBe('retry: 1500\ndata: x\n\n');
    expect(encodeRetry(3000)).toBe('retry: 3000\n\n');
    for (const bad of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53, '10' as unknown as number]) {
      const err = expectInvalidField(() => encode({ data: 'x', retry: bad }));
      expect(err.message).toContain('retry');
      expectInvalidField(() => encodeRetry(bad));
    }
  });

  it('writes nothing when it throws: the error is the only outcome', () => {
    // A frame is returned whole or not at all; there is no partial string to leak.
    let frame: string | undefined;
    expectInvalidField(() => {
      frame = encode({ data: 'fine', event: 'ok', id: 'bad\n' });
    });
    expect(frame).toBeUndefined();
  });
});

describe('encode: comments and BOM', () => {
  it('writes a comment with line breaks as several `:` lines', () => {
    expect(encode({ comment: 'one\r\ntwo\rthree\nfour' })).toBe(': one\n: two\n: three\n: four\n\n');
    expect(encodeComment('a\n\nb')).toBe(': a\n:\n: b\n\n');
    expect(encodeComment('')).toBe(':\n\n');
    expect(HEARTBEAT).toBe(':\n\n');
    const decoded = decodeWithEventsourceParser([Buffer.from(encode({ comment: ' x\ny', data: 'd' }))]);
    expect(decoded.comments).toEqual([' x', 'y']);
    expect(decoded.events).toEqual([{ id: undefined, event: undefined, data: 'd' }]);
  });

  it('never writes a BOM, even when data starts with U+FEFF', () => {
    const frame = encode({ data: '\uFEFFdata' });
    expect(frame).toBe('data: \uFEFFdata\n\n');
    expect(startsWithBom(Buffer.from(frame))).toBe(false);
    for (const f of [encode({ comment: '\uFEFF' }), encodeComment('\uFEFF'), encodeData('\uFEFF', undefined, '1')]) {
      expect(startsWithBom(Buffer.from(f))).toBe(false);
    }
  });
});

describe('encode: properties, decoded by eventsource-parser and parseEventStream', () => {
  it('one event decodes to exactly that event, no extra event or field', () => {
    fc.assert(
      fc.property(validEvent, (input) => {
        const frame = encode(input);
        const bytes = Buffer.from(frame);
        expect(startsWithBom(bytes)).toBe(false);
        expectWellFormed(frame);

        const data = normalise(input.data as string);
        const real = decodeWithEventsourceParser([bytes]);
        expect(real.errors).toEqual([]);
        expect(real.events).toEqual([{ data, event: input.event || undefined, id: input.id }]);
        expect(real.retries).toEqual(input.retry === undefined ? [] : [input.retry]);
        expect(real.comments).toEqual(input.comment === undefined ? [] : normalise(input.comment).split('\n'));

        const ours = parseEventStream(bytes);
        expect(ours.events).toEqual([{ type: input.event || 'message', data, lastEventId: input.id ?? '' }]);
        expect(ours.retry).toBe(input.retry);
        expect(ours.comments).toEqual(real.comments);
      }),
      { numRuns: 300 },
    );
  });

  it('non-string data decodes to its JSON text', () => {
    fc.assert(
      // Strings are sent as they are (tested above); everything else goes through JSON.stringify.
      fc.property(
        fc.jsonValue().filter((v) => typeof v !== 'string'),
        (value) => {
          const json = JSON.stringify(value);
          const frame = encode({ data: value });
          expectWellFormed(frame);
          // JSON.stringify never emits a raw CR or LF, so the text is one line and arrives unchanged.
          expect(decodeWithEventsourceParser([Buffer.from(frame)]).events).toEqual([
            { data: json, event: undefined, id: undefined },
          ]);
          expect(parseEventStream(frame).events.map((e) => e.data)).toEqual([json]);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('many frames concatenated (and cut anywhere) decode to exactly those events, in order', () => {
    fc.assert(
      fc.property(
        fc.array(validEvent, { minLength: 1, maxLength: 15 }),
        fc.array(fc.nat(), { maxLength: 12 }),
        (inputs, cuts) => {
          const bytes = Buffer.from(inputs.map((e) => encode(e)).join(''));
          expect(startsWithBom(bytes)).toBe(false);
          const chunks = splitAt(bytes, cuts);

          const real = decodeWithEventsourceParser(chunks);
          expect(real.errors).toEqual([]);
          expect(real.events).toEqual(
            inputs.map((e) => ({ data: normalise(e.data as string), event: e.event || undefined, id: e.id })),
          );

          // The last event id persists across events (WHATWG), which our parser reports per event.
          let lastId = '';
          const expected = inputs.map((e) => {
            if (e.id !== undefined) lastId = e.id;
            return { type: e.event || 'message', data: normalise(e.data as string), lastEventId: lastId };
          });
          const parser = new EventStreamParser();
          for (const chunk of chunks) parser.feed(chunk);
          expect(parser.result.events).toEqual(expected);
          expect(parser.result.comments).toEqual(real.comments);
          const retries = inputs.filter((e) => e.retry !== undefined).map((e) => e.retry);
          expect(real.retries).toEqual(retries);
          expect(parser.result.retry).toBe(retries.at(-1));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('throws exactly when a field holds a forbidden character, and then only ERR_SSE_INVALID_FIELD', () => {
    const maybeBadRetry = fc.oneof(
      fc.nat(),
      fc.integer({ min: -1000, max: -1 }),
      fc.double(),
      fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53, Number.MAX_SAFE_INTEGER),
    );
    fc.assert(
      fc.property(
        fc.record({ data: anyText, event: anyText, id: anyText, retry: maybeBadRetry }, { requiredKeys: ['data'] }),
        (input) => {
          const badEvent = input.event !== undefined && /[\r\n]/.test(input.event);
          const badId = input.id !== undefined && /[\r\n\0]/.test(input.id);
          const badRetry = input.retry !== undefined && !(Number.isSafeInteger(input.retry) && input.retry >= 0);
          let frame: string | undefined;
          let error: unknown;
          try {
            frame = encode(input);
          } catch (err) {
            error = err;
          }
          if (error !== undefined) {
            expect(error).toBeInstanceOf(SseError);
            expect((error as SseError).code).toBe('ERR_SSE_INVALID_FIELD');
            expect(badEvent || badId || badRetry).toBe(true);
          } else {
            expect(badEvent || badId || badRetry).toBe(false);
            expectWellFormed(frame as string);
            expect(parseEventStream(frame as string).events).toHaveLength(1);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});

// ---------------------------------------------------------------------------------------------------
// The real `eventsource` client over a real socket.

const servers: Server[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

async function listen(server: Server): Promise<string> {
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/events`;
}

describe('encode: the real eventsource client', () => {
  it('receives a batch of tricky events exactly as they were encoded', async () => {
    const batch: SseEvent[] = [
      { data: 'line1\rline2\rline3', id: '1' },
      { data: '  two leading spaces', id: '2' },
      { data: ' one', event: 'tick', id: '3' },
      { data: '', id: '4' },
      { data: '\r\n\n\r', id: '5' },
      { data: { json: 'obj', n: [1, 2] }, id: '6' },
      { data: '😀 日本語 e\u0301 \u2028 \u0085 \uFEFF', event: 'ünïcödé', id: ' ïd-7 with spaces' },
      { data: 'colon: value: x', event: 'with:colon', id: ':8' },
      { data: 'data: nested\nid: fake\nevent: tick\n\nretry: 1', id: '9' },
      { data: 'NUL\0in data', id: '10' },
      { comment: 'comment\nwith\rbreaks\r\nid: 99' },
      { data: 'after comment', id: '11' },
      { data: 'with retry', id: '12', retry: 5000 },
      { data: 'crlf\r\nend\r\n', event: 'tick', id: '13' },
      { data: 'last', id: 'done' },
    ];
    const expected = [
      { type: 'message', data: 'line1\nline2\nline3', lastEventId: '1' },
      { type: 'message', data: '  two leading spaces', lastEventId: '2' },
      { type: 'tick', data: ' one', lastEventId: '3' },
      { type: 'message', data: '', lastEventId: '4' },
      { type: 'message', data: '\n\n\n', lastEventId: '5' },
      { type: 'message', data: '{"json":"obj","n":[1,2]}', lastEventId: '6' },
      { type: 'ünïcödé', data: '😀 日本語 e\u0301 \u2028 \u0085 \uFEFF', lastEventId: ' ïd-7 with spaces' },
      { type: 'with:colon', data: 'colon: value: x', lastEventId: ':8' },
      { type: 'message', data: 'data: nested\nid: fake\nevent: tick\n\nretry: 1', lastEventId: '9' },
      { type: 'message', data: 'NUL\0in data', lastEventId: '10' },
      { type: 'message', data: 'after comment', lastEventId: '11' },
      { type: 'message', data: 'with retry', lastEventId: '12' },
      { type: 'tick', data: 'crlf\nend\n', lastEventId: '13' },
      { type: 'message', data: 'last', lastEventId: 'done' },
    ];
    const frames = batch.map((e) => encode(e));
    const url = await listen(
      createServer((_req, res) => {
        res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' });
        // One write per frame, and the last few cut mid-line (inside a multi-byte character too), as a
        // network may deliver them.
        const tail = Buffer.from(frames.slice(10).join(''));
        for (const frame of frames.slice(0, 10)) res.write(frame);
        res.write(tail.subarray(0, 7));
        setTimeout(() => {
          res.write(tail.subarray(7, 40));
          res.write(tail.subarray(40));
        }, 20);
      }),
    );

    const received: { type: string; data: string; lastEventId: string }[] = [];
    const es = new EventSource(url);
    try {
      await new Promise<void>((resolve, reject) => {
        const onEvent = (event: MessageEvent): void => {
          received.push({ type: event.type, data: event.data, lastEventId: event.lastEventId });
          if (event.lastEventId === 'done') resolve();
        };
        for (const type of ['message', 'tick', 'ünïcödé', 'with:colon']) es.addEventListener(type, onEvent);
        es.addEventListener('error', () => reject(new Error('the eventsource client failed')));
        setTimeout(() => reject(new Error(`only ${received.length} events arrived`)), 5000).unref();
      });
    } finally {
      es.close();
    }
    expect(received).toEqual(expected);
  });
});
