// Errors and fall-through after the stream opened: the stream ends, onError hears of it once, and
// neither the app's error handlers nor finalhandler answer a second time.
import { createHub, type EventStream, type Hub } from '@ssekit/core';
import { sse } from '@ssekit/express';
import type { NextFunction, Request, Response } from 'express';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { closeAll, connect, serve, until, versions } from './helpers.js';

const hubs: Hub[] = [];
afterEach(async () => {
  vi.restoreAllMocks();
  await Promise.all(hubs.splice(0).map((hub) => hub.close()));
  await closeAll();
});

type Express = (typeof versions)[number]['express'];

const failures: Record<
  string,
  { express5Only?: boolean; handler: (req: Request, res: Response, next: NextFunction) => unknown }
> = {
  'a sync throw': {
    handler: (_req, res) => {
      res.sse.send('before');
      throw new Error('boom');
    },
  },
  'next(err)': {
    handler: (_req, res, next) => {
      res.sse.send('before');
      next(new Error('boom'));
    },
  },
  'next(err) later': {
    handler: (_req, res, next) => {
      res.sse.send('before');
      setTimeout(() => next(new Error('boom')), 5);
    },
  },
  'an async rejection': {
    express5Only: true,
    handler: async (_req, res) => {
      res.sse.send('before');
      await new Promise((resolve) => setTimeout(resolve, 5));
      throw new Error('boom');
    },
  },
};

/** An app whose /events handler fails after the stream opened, with an app-level error handler. */
function failingApp(express: Express, handler: (req: Request, res: Response, next: NextFunction) => unknown) {
  const app = express();
  const reported: { error: unknown; open: boolean; sameResponse: boolean }[] = [];
  const appErrors: unknown[] = [];
  let stream: EventStream | undefined;
  app.get(
    '/events',
    sse({
      keepalive: false,
      onError: (error, _req, res) => {
        reported.push({ error, open: res.sse.isOpen, sameResponse: res.sse === stream });
      },
    }),
    (req: Request, res: Response, next: NextFunction) => {
      stream = res.sse;
      return handler(req, res, next);
    },
  );
  // What apps commonly have: it must not be reached for an open stream.
  app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    appErrors.push(err);
    res.status(500).json({ error: 'internal' });
  });
  return { app, reported, appErrors, stream: () => stream };
}

describe.each(versions)('$name', ({ name, express }) => {
  for (const [what, { express5Only, handler }] of Object.entries(failures)) {
    test.skipIf(express5Only && name !== 'express 5')(
      `${what} after open: the stream ends, onError is called once, the app error handler is not reached`,
      async () => {
        const { app, reported, appErrors, stream } = failingApp(express, handler);
        const { url } = await serve(app);
        const client = await connect(`${url}/events`);
        // The body ends normally (a clean end of the chunked response), not by a destroyed socket.
        expect(await client.ended).toBe('end');
        expect(client.events.map((e) => e.data)).toEqual(['before']);
        expect(client.text()).not.toContain('internal');
        expect(reported).toHaveLength(1);
        expect((reported[0]?.error as Error | undefined)?.message).toBe('boom');
        expect(reported[0]?.open).toBe(true);
        expect(reported[0]?.sameResponse).toBe(true);
        expect(appErrors).toEqual([]);
        expect(stream()?.isOpen).toBe(false);
        // The server is fine: the same route serves the next client.
        const next = await connect(`${url}/events`);
        expect(await next.ended).toBe('end');
        expect(reported).toHaveLength(2);
      },
    );
  }

  test('inside an express.Router() mounted on a path, errors after open are caught the same way', async () => {
    const app = express();
    const router = express.Router();
    const reported: unknown[] = [];
    const appErrors: unknown[] = [];
    router.get(
      '/events',
      sse({ keepalive: false, onError: (error) => reported.push(error) }),
      (_req: Request, res: Response) => {
        res.sse.send('before');
        throw new Error('boom');
      },
    );
    app.use('/api', router);
    app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
      appErrors.push(err);
      res.status(500).end();
    });
    const { url } = await serve(app);
    const client = await connect(`${url}/api/events`);
    expect(await client.ended).toBe('end');
    expect(client.events.map((e) => e.data)).toEqual(['before']);
    expect(reported).toHaveLength(1);
    expect(appErrors).toEqual([]);
  });

  test('errors before the stream opened still reach the app error handler', async () => {
    const app = express();
    const appErrors: unknown[] = [];
    app.get(
      '/events',
      (_req: Request, _res: Response, next: NextFunction) => next(new Error('not yet')),
      sse({ keepalive: false }),
    );
    app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
      appErrors.push(err);
      res.status(500).json({ error: 'handled' });
    });
    const { url } = await serve(app);
    const res = await fetch(`${url}/events`, { headers: { accept: 'text/event-stream' } });
    expect(res.status).toBe(500);
    expect(await res.json()).toEqual({ error: 'handled' });
    expect(appErrors).toHaveLength(1);
  });

  test('a response that already started is not taken over: ERR_SSE_HEADERS_SENT goes to next(err)', async () => {
    const app = express();
    const appErrors: { code?: string; headersSent: boolean }[] = [];
    app.get(
      '/events',
      (_req: Request, res: Response, next: NextFunction) => {
        res.status(200).type('text/plain').write('already talking\n');
        next();
      },
      sse({ keepalive: false }),
      () => {
        throw new Error('must not run');
      },
    );
    app.use((err: { code?: string }, _req: Request, res: Response, next: NextFunction) => {
      appErrors.push({ code: err.code, headersSent: res.headersSent });
      next(err);
    });
    const { url } = await serve(app);
    const client = await connect(`${url}/events`);
    expect(client.headers.get('content-type')).toMatch(/^text\/plain/);
    await client.ended;
    expect(client.text()).toBe('already talking\n');
    expect(appErrors).toEqual([{ code: 'ERR_SSE_HEADERS_SENT', headersSent: true }]);
  });

  test('default onError: console.error once per stream, no crash', async () => {
    const logged: unknown[][] = [];
    vi.spyOn(console, 'error').mockImplementation((...args: unknown[]) => {
      logged.push(args);
    });
    const app = express();
    app.get('/events', sse({ keepalive: false }), (_req: Request, res: Response) => {
      res.sse.send('x');
      throw new Error('kaput');
    });
    const { url } = await serve(app);
    const client = await connect(`${url}/events`);
    expect(await client.ended).toBe('end');
    expect(logged).toHaveLength(1);
    expect(String(logged[0]?.[0])).toContain('[ssekit] GET /events');
    expect((logged[0]?.[1] as Error | undefined)?.message).toBe('kaput');
  });

  test('an onError that throws is logged, never thrown into Express', async () => {
    const logged: unknown[][] = [];
    vi.spyOn(console, 'error').mockImplementation((...args: unknown[]) => {
      logged.push(args);
    });
    const app = express();
    app.get(
      '/events',
      sse({
        keepalive: false,
        onError: () => {
          throw new Error('reporter broke');
        },
      }),
      () => {
        throw new Error('handler broke');
      },
    );
    const { url } = await serve(app);
    const client = await connect(`${url}/events`);
    expect(await client.ended).toBe('end');
    expect(logged).toHaveLength(1);
    expect(String(logged[0]?.[0])).toContain('onError threw');
  });

  test('a handler-less hub route is not answered again by a later catch-all', async () => {
    const hub = createHub();
    hubs.push(hub);
    const app = express();
    let caughtAll = 0;
    app.get('/prices', sse({ hub, topics: ['prices'], keepalive: false }));
    app.use((_req: Request, res: Response) => {
      caughtAll++;
      res.status(404).send('not found');
    });
    const { url } = await serve(app);
    const client = await connect(`${url}/prices`);
    await until(() => hub.stats().streams === 1, 5000, 'a subscription');
    await hub.publish('prices', 'one');
    await hub.publish('prices', 'two');
    expect((await client.waitFor(2)).map((e) => e.data)).toEqual(['one', 'two']);
    expect(caughtAll).toBe(0);
    // The same app still answers other paths normally.
    expect((await fetch(`${url}/elsewhere`)).status).toBe(404);
    expect(caughtAll).toBe(1);
  });

  test('a failing source ends its stream and reaches onError; other streams keep going', async () => {
    const reported: unknown[] = [];
    const app = express();
    let healthy: EventStream | undefined;
    app.get(
      '/bad',
      sse({
        keepalive: false,
        onError: (error) => reported.push(error),
        source: async function* () {
          yield 'one';
          throw new Error('source broke');
        },
      }),
    );
    app.get('/good', sse({ keepalive: false }), (_req: Request, res: Response) => {
      healthy = res.sse;
      res.sse.send('hi');
    });
    const { url } = await serve(app);
    const good = await connect(`${url}/good`);
    await good.waitFor(1);
    const bad = await connect(`${url}/bad`);
    expect(await bad.ended).toBe('end');
    expect(bad.events.map((e) => e.data)).toEqual(['one']);
    expect(reported).toHaveLength(1);
    expect((reported[0] as { code?: string }).code).toBe('ERR_SSE_SOURCE');
    healthy?.send('still here');
    expect((await good.waitFor(2))[1]?.data).toBe('still here');
  });

  test('mounted with app.use(): events flow, and falling through does not end the stream', async () => {
    const hub = createHub();
    hubs.push(hub);
    const app = express();
    app.use('/feed', sse({ hub, topics: ['feed'], keepalive: false }));
    const { url } = await serve(app);
    const client = await connect(`${url}/feed`);
    await until(() => hub.stats().streams === 1, 5000, 'a subscription');
    await hub.publish('feed', 'a');
    expect((await client.waitFor(1))[0]?.data).toBe('a');
  });
});
