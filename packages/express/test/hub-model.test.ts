/** The hub model (hub.model.ts) served through the Express route: `sse({ hub, topics })`. */
import { sse } from '@ssekit/express';
import express, { type Request, type Response } from 'express';
import { expect, test } from 'vitest';
import { modelRuns, runHubModel } from '../../core/test/hub.model.js';
import { serve } from './helpers.js';

const runs = modelRuns(10);

test('the hub model holds through sse({ hub, topics })', { timeout: 60_000 + runs * 2_000 }, async () => {
  const summary = await runHubModel({
    historySize: 6,
    runs,
    async serve(hub, opened, report) {
      const app = express();
      app.get(
        '/events',
        sse({
          hub,
          keepalive: false,
          topics: (req: Request) => String(req.query.topics ?? '').split(','),
          onError: report,
        }),
        (req: Request, res: Response) => opened(String(req.query.conn), res.sse),
      );
      const served = await serve(app);
      return { url: `${served.url}/events`, close: () => served.close() };
    },
  });
  expect(summary.replays).toBeGreaterThan(0);
  expect(summary.gaps).toBeGreaterThan(0);
});
