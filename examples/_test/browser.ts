/**
 * Shared by the example tests: drive Debian's Chromium through playwright-core, and cut a client's
 * network. (Starting example servers lives in example.ts, re-exported here.)
 */
import { existsSync } from 'node:fs';
import net from 'node:net';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe } from 'vitest';
import { type ExampleServer, restartablePort, startExample } from './example.js';

export { type ExampleServer, startExample };

export const CHROMIUM = '/usr/bin/chromium';

/** `describe` when Chromium is there (always under CI=true, where a missing one must fail), else a visible skip. */
export const describeBrowser: typeof describe = (() => {
  if (existsSync(CHROMIUM) || process.env.CI === 'true') return describe;
  console.warn(`[ssekit] ${CHROMIUM} not found: browser tests skipped (apt-get install -y chromium)`);
  return describe.skip as typeof describe;
})();

/** Launches headless Chromium with the flags this machine needs (no sandbox as root, no network chatter). */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-dev-shm-usage',
    ],
  });
}

/**
 * A TCP proxy standing for a client's network: `cut()` drops its connections and refuses new ones
 * until `restore()`, as a train entering a tunnel would.
 */
export async function flakyNetwork(targetPort: number) {
  const sockets = new Set<net.Socket>();
  let up = true;
  const server = net.createServer((client) => {
    if (!up) {
      client.destroy();
      return;
    }
    const upstream = net.connect(targetPort, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => {});
      s.on('close', () => {
        sockets.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    cut() {
      up = false;
      for (const s of sockets) s.destroy();
    },
    restore() {
      up = true;
    },
    close() {
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * For a `describe` block that drives an example in Chromium: one browser for the block, and
 * `start(env)` for the example's server (restartable on the same port via `PORT`). After the block,
 * the server it started last is killed and the browser closed.
 */
export function exampleInChromium(script: string) {
  let browser: Browser | undefined;
  let server: ExampleServer | undefined;
  beforeAll(async () => {
    browser = await launchChromium();
  });
  afterAll(async () => {
    await server?.stop('SIGKILL');
    await browser?.close();
  });
  return {
    get browser(): Browser {
      if (browser === undefined) throw new Error('Chromium is not running (beforeAll failed?)');
      return browser;
    },
    async start(env: Record<string, string> = {}): Promise<ExampleServer> {
      // Restarts reuse the port: it must not be one other tests can be handed meanwhile.
      server = await startExample(script, { PORT: String(await restartablePort()), ...env });
      return server;
    },
  };
}

/**
 * Drops a page's connection through `network` once it shows a few events (`#events li[data-id]`,
 * `#state[data-state]`, as every example page has), keeps it down for `awayMs` while the server goes
 * on publishing, restores it, and waits until the page shows `more` events past those it had.
 */
export async function throughACut(
  page: Page,
  network: { cut(): void; restore(): void },
  { awayMs = 1500, more = 10 } = {},
): Promise<void> {
  await page.waitForSelector('#state[data-state="open"]');
  await page.waitForFunction(() => document.querySelectorAll('#events li[data-id]').length >= 3);
  network.cut();
  await page.waitForSelector('#state[data-state="connecting"]');
  const before = await page.$$eval('#events li[data-id]', (els) => els.length);
  await page.waitForTimeout(awayMs);
  network.restore();
  await page.waitForSelector('#state[data-state="open"]', { timeout: 15_000 });
  await page.waitForFunction((n) => document.querySelectorAll('#events li[data-id]').length >= n, before + more, {
    timeout: 15_000,
  });
}
