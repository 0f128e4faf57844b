/// <reference lib="dom" />
// The multi-instance example end to end: two instances (built packages, as deployed) sharing a
// Redis stream, nginx in front exactly as start.mjs runs it, real EventSource clients and the page in
// Chromium, all through nginx.
import { existsSync } from 'node:fs';
import { EventSource } from 'eventsource';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  buildDist,
  deleteKeys,
  describeIf,
  freePort,
  REDIS_URL,
  redisReachable,
  uniqueKey,
} from '../../../packages/redis/test/redis-server.js';
import { CHROMIUM, launchChromium } from '../../_test/browser.js';
import { start } from '../start.mjs';

const NGINX = process.env.NGINX ?? '/usr/sbin/nginx';
const ready = (await redisReachable()) && existsSync(NGINX);
const describeE2E = describeIf(ready, `Redis at ${REDIS_URL} and nginx at ${NGINX}`);
// The page is checked in Chromium too when there is one (under CI=true there must be).
const withBrowser = existsSync(CHROMIUM) || process.env.CI === 'true';

interface Instance {
  name: string;
  url: string;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

describeE2E('multi-instance example behind nginx', () => {
  const stream = uniqueKey('multi-instance');
  let app: { url: string; instances: Instance[]; stop: () => Promise<void> };
  const sources: EventSource[] = [];
  let browser: Browser | undefined;

  beforeAll(async () => {
    buildDist(['core', 'express', 'redis']);
    app = await start({
      port: await freePort(),
      instancePorts: [0, 0],
      redisUrl: REDIS_URL,
      nginx: NGINX,
      quiet: true,
      // No ticks (the test publishes), and a short reconnection delay.
      env: { STREAM: stream, TICK_MS: '0', RETRY: '100' },
    });
  });

  afterAll(async () => {
    await browser?.close();
    for (const source of sources) source.close();
    await app?.stop();
    await deleteKeys(stream);
  });

  function client() {
    const served: string[] = [];
    const texts: string[] = [];
    const ids: string[] = [];
    let opens = 0;
    const source = new EventSource(`${app.url}/events`);
    sources.push(source);
    source.addEventListener('open', () => opens++);
    source.addEventListener('instance', (e) => served.push(JSON.parse(e.data).instance));
    source.addEventListener('message', (e) => {
      texts.push(JSON.parse(e.data).text);
      ids.push(e.lastEventId);
    });
    return {
      source,
      served,
      texts,
      ids,
      get opens() {
        return opens;
      },
    };
  }

  /** The example's page in Chromium, through nginx, once its stream has said which instance serves it. */
  async function openPage(): Promise<Page> {
    browser ??= await launchChromium();
    const page = await browser.newPage();
    await page.goto(`${app.url}/`);
    await page.waitForFunction(() => document.getElementById('instance')?.textContent !== '?');
    return page;
  }

  async function publish(instance: Instance, text: string): Promise<void> {
    const res = await fetch(`${instance.url}/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ text }),
    });
    expect(res.status).toBe(201);
  }

  it('serves the page and balances requests over both instances', async () => {
    const page = await fetch(`${app.url}/`);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    expect(await page.text()).toContain("source.addEventListener('instance'");
    const seen = new Set<string>();
    for (let i = 0; i < 4; i++) {
      const res = await fetch(`${app.url}/instance`);
      seen.add(((await res.json()) as { instance: string }).instance);
    }
    expect([...seen].sort()).toEqual(['A', 'B']);
  });

  it('a client whose instance is killed reconnects through nginx to the other and misses nothing, repeats nothing', async () => {
    // The victim is the instance serving the page (or, without a browser, the first client); more
    // EventSource clients are opened until round-robin has put one on the victim too.
    const page = withBrowser ? await openPage() : undefined;
    const pageServer = page ? await page.evaluate(() => document.getElementById('instance')?.textContent) : undefined;
    const clients: ReturnType<typeof client>[] = [];
    let victimName = pageServer;
    while (clients.length < 2 || !clients.some((c) => c.served[0] === victimName)) {
      if (clients.length === 6) throw new Error('nginx never routed a client to the victim instance');
      const c = client();
      clients.push(c);
      await waitFor(() => c.served.length === 1, 'the stream to open');
      victimName ??= c.served[0];
    }
    const [a, b] = app.instances as [Instance, Instance];
    const victim = victimName === 'A' ? a : b;
    const survivor = victim === a ? b : a;
    const total = 120;
    const killAt = 40;
    for (let i = 0; i < total; i++) {
      if (i === killAt) {
        await waitFor(() => clients.every((c) => c.texts.length === killAt), 'the events before the kill');
        // A crash, not a graceful shutdown: nginx sees the upstream connection die mid-stream.
        await victim.stop('SIGKILL');
      }
      // Publishes keep coming (alternating instances while both are up) during the reconnection.
      await publish(i < killAt && i % 2 === 1 ? victim : survivor, String(i));
    }
    await waitFor(() => clients.every((c) => c.texts.length >= total), `all ${total} events`);
    await new Promise((resolve) => setTimeout(resolve, 100));

    const expected = Array.from({ length: total }, (_, i) => String(i));
    for (const c of clients) {
      expect(c.texts).toEqual(expected);
      expect(new Set(c.ids).size).toBe(total);
      // A client of the victim came back, through nginx, on the survivor; the others stayed.
      expect(c.served).toEqual(c.served[0] === victim.name ? [victim.name, survivor.name] : [survivor.name]);
    }
    for (const c of clients) expect(c.opens).toBe(c.served.length);

    if (page) {
      await page.waitForFunction((n) => document.getElementById('count')?.textContent === String(n), total);
      const shown = await page.evaluate(() =>
        Array.from(document.querySelectorAll('#messages li'))
          .map((li) => li.firstChild?.textContent?.trim())
          .reverse(),
      );
      expect(shown).toEqual(expected);
      const served = await page.evaluate(() => document.getElementById('served')?.textContent);
      expect(served).toBe(`${victim.name} → ${survivor.name}`);
    }
  });
});

async function waitFor(condition: () => boolean, what: string, timeout = 15_000): Promise<void> {
  const deadline = Date.now() + timeout;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
