import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';
import { expect, test } from 'vitest';
import {
  describeBrowser,
  type ExampleServer,
  exampleInChromium,
  flakyNetwork,
  throughACut,
} from '../../_test/browser.js';

const script = fileURLToPath(new URL('../server.js', import.meta.url));

// Hub ids are `<epoch>-<seq>`: within one server run, the ticks a page shows must have consecutive seqs.
const shownIds = (page: Page) =>
  page.$$eval('#events li[data-id]', (els) => els.map((el) => el.getAttribute('data-id') as string));
const seqs = (ids: string[]) => ids.map((id) => Number(id.split('-')[1])).sort((a, b) => a - b);

describeBrowser('express-prices example in Chromium', () => {
  const suite = exampleInChromium(script);
  let server: ExampleServer | undefined;

  test('ticks arrive; after a dropped connection the page resumes with no missed and no repeated tick', async () => {
    server = await suite.start({ TICK_MS: '200' });
    const network = await flakyNetwork(server.port);
    const page = await suite.browser.newPage();
    try {
      await page.goto(`http://localhost:${network.port}/`);
      await throughACut(page, network);
      const got = seqs(await shownIds(page));
      expect(new Set(got).size).toBe(got.length);
      expect(got).toEqual(Array.from({ length: got.length }, (_, i) => (got[0] as number) + i));
      expect(await page.isHidden('#gap')).toBe(true);
    } finally {
      await page.close();
      await network.close();
    }
  });

  test('after a server restart the page reconnects and shows the gap instead of pretending', async () => {
    if (!server) throw new Error('no server');
    const page = await suite.browser.newPage();
    await page.goto(server.url);
    await page.waitForFunction(() => document.querySelectorAll('#events li[data-id]').length >= 2);
    const port = server.port;
    await server.stop('SIGTERM');
    await page.waitForSelector('#state[data-state="connecting"]');
    server = await suite.start({ PORT: String(port), TICK_MS: '200' });
    await page.waitForSelector('#gap:not([hidden])', { timeout: 15_000 });
    await page.waitForSelector('#state[data-state="open"]');
    const ids = await shownIds(page);
    expect(new Set(ids).size).toBe(ids.length);
    await page.close();
  });
});
