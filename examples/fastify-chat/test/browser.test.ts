import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';
import { expect, test } from 'vitest';
import { describeBrowser, type ExampleServer, exampleInChromium, flakyNetwork } from '../../_test/browser.js';

const script = fileURLToPath(new URL('../server.js', import.meta.url));

async function say(page: Page, user: string, text: string): Promise<void> {
  await page.fill('input[name=user]', user);
  await page.fill('input[name=text]', text);
  await page.click('button[type=submit]');
  await page.waitForFunction(() => (document.querySelector('input[name=text]') as HTMLInputElement).value === '');
}

const texts = (page: Page) =>
  page.$$eval('#messages li', (els) =>
    els.map((el) => `${el.getAttribute('data-id')}|${el.childNodes[1]?.textContent}`),
  );

describeBrowser('fastify-chat example in Chromium', () => {
  const suite = exampleInChromium(script);
  let server: ExampleServer | undefined;

  test('a page that lost its connection gets every message it missed, once, in order', async () => {
    server = await suite.start();
    const network = await flakyNetwork(server.port);
    const alice = await (await suite.browser.newContext()).newPage();
    const bob = await (await suite.browser.newContext()).newPage();
    await alice.goto(server.url);
    await bob.goto(`http://localhost:${network.port}/`);
    for (const page of [alice, bob]) await page.waitForSelector('#state[data-state="open"]');
    await say(alice, 'alice', 'hello');
    await bob.waitForFunction(() => document.querySelectorAll('#messages li').length === 1);

    // Bob's network drops: his EventSource loses its connection and cannot get back for a while.
    network.cut();
    await bob.waitForSelector('#state[data-state="connecting"]');
    for (const text of ['one', 'two', 'three']) await say(alice, 'alice', text);
    network.restore();

    await bob.waitForFunction(() => document.querySelectorAll('#messages li').length >= 4, null, { timeout: 15_000 });
    await bob.waitForTimeout(300);
    const seen = await texts(bob);
    expect(seen.map((t) => t.split('|')[1])).toEqual(['hello', 'one', 'two', 'three']);
    expect(seen).toEqual(await texts(alice));
    expect(await bob.textContent('#notice')).toBe('');
    await network.close();
  });

  test('after a server restart the page reconnects and says what it cannot replay', async () => {
    if (!server) throw new Error('no server');
    const page = await suite.browser.newPage();
    await page.goto(server.url);
    await page.waitForSelector('#state[data-state="open"]');
    await say(page, 'carol', 'before restart');
    await page.waitForFunction(() => document.querySelectorAll('#messages li').length >= 1);
    const port = server.port;
    await server.stop('SIGTERM');
    await page.waitForSelector('#state[data-state="connecting"]');
    server = await suite.start({ PORT: String(port) });
    await page.waitForSelector('#state[data-state="open"]', { timeout: 10_000 });
    // The history of the old process is gone: the hub says so instead of pretending nothing was missed.
    await page.waitForFunction(() => document.getElementById('notice')?.textContent !== '', null, { timeout: 10_000 });
    await say(page, 'carol', 'after restart');
    await page.waitForFunction(() =>
      [...document.querySelectorAll('#messages li')].some((li) => li.textContent?.includes('after restart')),
    );
    const ids = await page.$$eval('#messages li', (els) => els.map((el) => el.getAttribute('data-id')));
    expect(new Set(ids).size).toBe(ids.length);
  });
});
