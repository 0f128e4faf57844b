/**
 * The adapter conformance suite: the same route options give the same answer on every adapter.
 * Each adapter's tests run it with a harness that serves `GET /events` with the given options:
 *
 * ```ts
 * import { adapterSuite } from '../../core/test/support/adapter-suite.js';
 * adapterSuite({ name: 'express', serve: async (options) => …, create: async (options) => …, param });
 * ```
 *
 * It checks, over the wire with real clients (`eventsource`, fetch, raw HTTP): delivery, negotiation
 * (406), refusals (403 and the error's own status and headers), faults (a 200 stream with a `retry:`
 * hint and a code, never the fault's message, and an `EventSource` that keeps reconnecting until the
 * fault clears), connection limits (503 + `Retry-After`), a source that fails with anything (only its
 * stream ends), unknown options (rejected with the closest name), per-request filters and resume.
 */
import { createHub, type Hub, StreamGroup } from '@ssekit/core';
import { EventSource } from 'eventsource';
import { afterEach, describe, expect, test } from 'vitest';
import { closeAll, connect, rawGet, until } from './clients.js';

/** How the suite drives one adapter. */
export interface AdapterHarness {
  /** Shown in the test names. */
  name: string;
  /**
   * Serves `GET /events` with these route options (`hub`, `topics`, `filter`, `source`, `group`,
   * `onError`, stream options), exactly as an app would; resolves to the base URL.
   */
  serve(options: Record<string, unknown>): Promise<string>;
  /** Creates the route (middleware, plugin registration, handler) with `options`; rejects on bad options. */
  create(options: Record<string, unknown>): Promise<void>;
  /** The query parameter `name` of the framework request handed to `topics` and `filter`. */
  param(req: unknown, name: string): string | undefined;
  /** Closes what `serve` opened. */
  close(): Promise<void>;
}

const DB_FAULT = 'ECONNREFUSED 10.0.0.5:5432 (postgres)';

/** Runs the conformance suite against `harness`. */
export function adapterSuite(harness: AdapterHarness): void {
  describe(`adapter conformance: ${harness.name}`, () => {
    const hubs: Hub[] = [];
    const hub = (): Hub => {
      const h = createHub();
      hubs.push(h);
      return h;
    };
    afterEach(async () => {
      await closeAll();
      await harness.close();
      await Promise.all(hubs.splice(0).map((h) => h.close()));
    });

    test('hub events reach an EventSource in order', async () => {
      const h = hub();
      const url = await harness.serve({ hub: h, topics: ['t'], keepalive: false });
      const es = new EventSource(`${url}/events`);
      const got: string[] = [];
      es.onmessage = (event) => got.push(event.data);
      try {
        await until(() => h.stats().streams === 1, 5000, 'the subscription');
        for (const n of [1, 2, 3]) await h.publish('t', `e${n}`);
        await until(() => got.length === 3, 5000, 'three events');
        expect(got).toEqual(['e1', 'e2', 'e3']);
      } finally {
        es.close();
      }
      await until(() => h.stats().streams === 0, 2000, 'the subscription to end');
    });

    test('a client that refuses text/event-stream gets 406 and no stream byte', async () => {
      const url = await harness.serve({ hub: hub(), topics: ['t'] });
      const wire = await rawGet(`${url}/events`, { accept: 'application/json' });
      expect(wire.split('\n')[0]).toBe('406');
      expect(wire).not.toMatch(/^content-type: text\/event-stream/m);
      expect(wire).not.toMatch(/^data:/m);
    });

    test('deliberate refusals answer their status before any stream byte', async () => {
      const h = hub();
      const url = await harness.serve({
        hub: h,
        topics: async (req: unknown) => {
          const as = harness.param(req, 'as');
          if (as === 'false') return false;
          if (as === 'sse-error') {
            throw Object.assign(new Error('log in first'), { status: 401, headers: { 'WWW-Authenticate': 'Bearer' } });
          }
          if (as === 'http-error') return Object.assign(new Error('no such feed'), { statusCode: 404, expose: true });
          return ['t'];
        },
      });
      const no = await rawGet(`${url}/events?as=false`);
      expect(no.split('\n')[0]).toBe('403');
      const login = await rawGet(`${url}/events?as=sse-error`);
      expect(login.split('\n')[0]).toBe('401');
      expect(login).toContain('www-authenticate: Bearer');
      const missing = await rawGet(`${url}/events?as=http-error`);
      expect(missing.split('\n')[0]).toBe('404');
      for (const wire of [no, login, missing]) {
        expect(wire).not.toMatch(/^content-type: text\/event-stream/m);
        expect(wire).not.toMatch(/^data:/m);
      }
      expect(h.stats().streams).toBe(0);
    });

    test.each([
      ['a plain Error', () => new Error(DB_FAULT), 'ERR_SSE_FAULT'],
      [
        'a TypeError (an app bug)',
        () => new TypeError(`Cannot read properties of undefined (${DB_FAULT})`),
        'ERR_SSE_FAULT',
      ],
      ['a thrown Symbol', () => Symbol(DB_FAULT), 'ERR_SSE_FAULT'],
      ['a 5xx error', () => Object.assign(new Error(DB_FAULT), { status: 503 }), 'ERR_SSE_FAULT'],
    ])(
      'a fault (%s) is reported, never shown, and answered with a 200 stream that asks to come back',
      async (_name, fault, code) => {
        const reported: unknown[] = [];
        const url = await harness.serve({
          hub: hub(),
          topics: () => {
            throw fault();
          },
          onError: (error: unknown) => reported.push(error),
        });
        const wire = await rawGet(`${url}/events`);
        expect(wire.split('\n')[0]).toBe('200');
        expect(wire).toContain('text/event-stream');
        const body = wire.slice(wire.indexOf('\n\n') + 2);
        expect(body).toMatch(new RegExp(`^retry: \\d+\\n\\nevent: ssekit-error\\ndata: \\{"code":"${code}"\\}\\n\\n$`));
        expect(wire).not.toContain('10.0.0.5');
        expect(reported).toHaveLength(1);
        expect(reported[0]).toMatchObject({ name: 'SseError', code });
        expect(String((reported[0] as Error).message)).toContain('10.0.0.5');
      },
    );

    test('bad topics from a topics function are a fault (ERR_SSE_INVALID_TOPIC), not a refusal', async () => {
      const reported: unknown[] = [];
      const url = await harness.serve({ hub: hub(), topics: () => [], onError: (e: unknown) => reported.push(e) });
      const wire = await rawGet(`${url}/events`);
      expect(wire.split('\n')[0]).toBe('200');
      expect(wire).toContain('data: {"code":"ERR_SSE_INVALID_TOPIC"}');
      expect(reported).toMatchObject([{ code: 'ERR_SSE_INVALID_TOPIC' }]);
    });

    test('an EventSource keeps reconnecting through a database blip and streams once it clears', async () => {
      const h = hub();
      let attempts = 0;
      const url = await harness.serve({
        hub: h,
        faultRetry: 60,
        keepalive: false,
        onError: () => {},
        topics: async () => {
          attempts++;
          if (attempts <= 3) throw new Error(DB_FAULT);
          return ['t'];
        },
      });
      const es = new EventSource(`${url}/events`);
      const got: string[] = [];
      const faults: string[] = [];
      es.onmessage = (event) => got.push(event.data);
      es.addEventListener('ssekit-error', (event) => faults.push(event.data));
      try {
        await until(() => h.stats().streams === 1, 10_000, 'the subscription after the blip');
        await h.publish('t', 'back');
        await until(() => got.length === 1, 5000, 'an event after the blip');
        expect(got).toEqual(['back']);
        expect(attempts).toBe(4);
        expect(faults).toEqual(Array(3).fill('{"code":"ERR_SSE_FAULT"}'));
        expect(es.readyState).toBe(EventSource.OPEN);
      } finally {
        es.close();
      }
    });

    test('past a group limit: 503 + Retry-After before any stream byte; a freed slot admits again', async () => {
      const group = new StreamGroup({ maxConnections: 1, retryAfter: 3 });
      const url = await harness.serve({ group, keepalive: false, source: () => waitForever() });
      const first = await connect(`${url}/events`);
      expect(first.status).toBe(200);
      await until(() => group.size === 1, 2000, 'the first stream');
      const wire = await rawGet(`${url}/events`);
      expect(wire.split('\n')[0]).toBe('503');
      expect(wire).toContain('retry-after: 3');
      first.close();
      await until(() => group.size === 0, 2000, 'the slot to free');
      const again = await connect(`${url}/events`);
      expect(again.status).toBe(200);
    });

    test.each([
      ['a Symbol', () => Symbol('boom')],
      ['an object with no prototype', () => Object.create(null)],
      ['null', () => null],
    ])(
      'a source that fails with %s ends only its stream, reported, with no unhandled rejection',
      async (_name, value) => {
        const unhandled: unknown[] = [];
        const onUnhandled = (reason: unknown) => unhandled.push(reason);
        process.on('unhandledRejection', onUnhandled);
        try {
          const reported: unknown[] = [];
          const h = hub();
          const url = await harness.serve({
            hub: h,
            topics: ['t'],
            keepalive: false,
            onError: (error: unknown) => reported.push(error),
            source: (req: unknown) =>
              harness.param(req, 'fail') === '1'
                ? (async function* () {
                    yield 'first';
                    throw value();
                  })()
                : waitForever(),
          });
          const bystander = await connect(`${url}/events`);
          await until(() => h.stats().streams === 1, 2000, 'the bystander');
          const failing = await connect(`${url}/events?fail=1`);
          expect(await failing.ended).toBe('end');
          expect(failing.events.map((e) => e.data)).toEqual(['first']);
          await until(() => reported.length === 1, 2000, 'the report');
          expect(reported[0]).toMatchObject({ code: 'ERR_SSE_SOURCE' });
          await h.publish('t', 'still here');
          expect((await bystander.waitFor(1)).map((e) => e.data)).toEqual(['still here']);
          await new Promise((resolve) => setTimeout(resolve, 20));
          expect(unhandled).toEqual([]);
        } finally {
          process.off('unhandledRejection', onUnhandled);
        }
      },
    );

    test('an unknown option is rejected where it is given, naming the closest known one', async () => {
      await expect(harness.create({ keepAlive: 1000 })).rejects.toThrow(
        /unknown option 'keepAlive' — did you mean 'keepalive'\?/,
      );
      await expect(harness.create({ keepalive: 'soon' })).rejects.toMatchObject({ code: 'ERR_SSE_INVALID_OPTION' });
    });

    test('filter gets each message and the request', async () => {
      const h = hub();
      const url = await harness.serve({
        hub: h,
        topics: ['notes'],
        keepalive: false,
        filter: (message: { event?: string }, req: unknown) => message.event === harness.param(req, 'who'),
      });
      const ann = await connect(`${url}/events?who=ann`);
      const bob = await connect(`${url}/events?who=bob`);
      await until(() => h.stats().streams === 2, 2000, 'two subscriptions');
      await h.publish('notes', 'for bob', { event: 'bob' });
      await h.publish('notes', 'for ann', { event: 'ann' });
      expect((await ann.waitFor(1)).map((e) => e.data)).toEqual(['for ann']);
      expect((await bob.waitFor(1)).map((e) => e.data)).toEqual(['for bob']);
    });

    test('a reconnect with Last-Event-ID gets exactly the missed events', async () => {
      const h = hub();
      const url = await harness.serve({ hub: h, topics: ['t'], keepalive: false });
      const ids: string[] = [];
      for (const n of [1, 2, 3, 4]) ids.push(await h.publish('t', `e${n}`));
      const resumed = await connect(`${url}/events`, { 'last-event-id': ids[1] as string });
      expect((await resumed.waitFor(2)).map((e) => e.data)).toEqual(['e3', 'e4']);
      await h.publish('t', 'e5');
      expect((await resumed.waitFor(3)).map((e) => e.data)).toEqual(['e3', 'e4', 'e5']);
    });
  });
}

/** An async iterable that yields nothing until it is stopped. */
async function* waitForever(): AsyncGenerator<never> {
  await new Promise(() => {});
}
