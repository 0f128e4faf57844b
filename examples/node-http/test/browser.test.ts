import { fileURLToPath } from 'node:url';
import { expect, test } from 'vitest';
import { describeBrowser, type ExampleServer, exampleInChromium } from '../../_test/browser.js';

const script = fileURLToPath(new URL('../server.js', import.meta.url));

describeBrowser('node-http example in Chromium', () => {
  const suite = exampleInChromium(script);
  let server: ExampleServer | undefined;

  test('the page shows ticks, reconnects after a restart, and never shows an id twice', async () => {
    server = await suite.start();
    const page = await suite.browser.newPage();
    await page.goto(server.url);
    await page.waitForSelector('#state[data-state="open"]');
    await page.waitForFunction(() => document.querySelectorAll('#events li[data-id]').length >= 2);

    // Restart on the same port: SIGTERM closes streams with a retry hint, the page keeps trying.
    const port = server.port;
    await server.stop('SIGTERM');
    await page.waitForSelector('#state[data-state="connecting"]');
    const before = await page.$$eval('#events li[data-id]', (els) => els.length);
    server = await suite.start({ PORT: String(port) });
    await page.waitForSelector('#state[data-state="open"]', { timeout: 10_000 });
    await page.waitForFunction((n) => document.querySelectorAll('#events li[data-id]').length >= n + 2, before, {
      timeout: 10_000,
    });
    // History lived in the old process: the page is told of the gap instead of silently missing events.
    await page.waitForSelector('#events li.gap');
    const ids = await page.$$eval('#events li[data-id]', (els) => els.map((el) => (el as HTMLElement).dataset.id));
    expect(new Set(ids).size).toBe(ids.length);
    await page.close();
  });
});
