import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';
import { beforeAll, expect, test } from 'vitest';
import { ensureBuilt } from '../../../scripts/ensure-built.js';
import { describeBrowser, exampleInChromium, flakyNetwork, throughACut } from '../../_test/browser.js';

const script = fileURLToPath(new URL('../server.js', import.meta.url));

beforeAll(() => {
  ensureBuilt(['core', 'web']);
}, 120_000);

/** The ticks the page shows, oldest first: the hub's id and the tick's own counter. */
const shown = (page: Page) =>
  page.$$eval('#events li[data-id]', (els) =>
    els.map((el) => ({ id: el.getAttribute('data-id') as string, n: Number(el.getAttribute('data-n')) })).reverse(),
  );

describeBrowser('hono example in Chromium', () => {
  const suite = exampleInChromium(script);

  test('ticks arrive in order; after a dropped connection the page resumes with no missed and no repeated tick', async () => {
    const server = await suite.start({ TICK_MS: '200' });
    const network = await flakyNetwork(server.port);
    const page = await suite.browser.newPage();
    try {
      await page.goto(`http://localhost:${network.port}/`);
      // Ticks go on being published while the page is away: ~7 of them at 200 ms.
      await throughACut(page, network);

      const ticks = await shown(page);
      // In arrival order, the tick counters and the hub's sequence numbers (`<epoch>-<seq>`) both go
      // up by one each time: nothing missed across the cut, nothing shown twice.
      const ns = ticks.map((t) => t.n);
      expect(ns).toEqual(Array.from({ length: ns.length }, (_, i) => (ns[0] as number) + i));
      const seqs = ticks.map((t) => Number(t.id.split('-')[1]));
      expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => (seqs[0] as number) + i));
      expect(new Set(ticks.map((t) => t.id)).size).toBe(ticks.length);
      // It really did reconnect (through Last-Event-ID), and history covered the gap.
      expect(Number(await page.textContent('#reconnects'))).toBeGreaterThanOrEqual(1);
      expect(await page.isHidden('#gap')).toBe(true);
    } finally {
      await page.close();
      await network.close();
    }
  });
});
