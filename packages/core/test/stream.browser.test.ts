import { once } from 'node:events';
import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { createEventStream, createHub, type SseRequest, type SseResponse } from '@ssekit/core';
import type { Browser } from 'playwright-core';
import selfsigned from 'selfsigned';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { describeBrowser, launchChromium } from '../../../examples/_test/browser.js';

// One page opening ten EventSources to the same origin. Browsers allow six HTTP/1.1 connections per
// origin, so over HTTP/1.1 the last four stay pending; over HTTP/2 all ten share one connection.
const PAGE = `<!doctype html><meta charset="utf-8"><title>10 streams</title><ul id="out"></ul><script>
  window.counts = Array(10).fill(0);
  for (let i = 0; i < 10; i++) {
    const es = new EventSource('/events?n=' + i);
    es.onmessage = () => { window.counts[i]++; };
  }
</script>`;

const hub = createHub();

function handler(req: SseRequest, res: SseResponse): void {
  if (req.url === '/') {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(PAGE);
    return;
  }
  const stream = createEventStream(req, res, { keepalive: false });
  void hub.subscribe(stream, 'tick');
}

describeBrowser('Chromium and the per-origin connection limit', () => {
  let browser: Browser;
  let timer: NodeJS.Timeout;
  beforeAll(async () => {
    browser = await launchChromium();
    timer = setInterval(() => void hub.publish('tick', Date.now()), 50);
  });
  afterAll(async () => {
    clearInterval(timer);
    await hub.close();
    await browser?.close();
  });

  async function countsAfterAWhile(url: string): Promise<number[]> {
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    const page = await context.newPage();
    await page.goto(url);
    // Wait until the first six streams have clearly been receiving for a while.
    await page.waitForFunction(
      () => (window as unknown as { counts: number[] }).counts.filter((c) => c >= 5).length >= 6,
    );
    await page.waitForTimeout(500);
    const counts = await page.evaluate(() => (window as unknown as { counts: number[] }).counts);
    await context.close();
    return counts;
  }

  test('over HTTP/2 (TLS) all ten EventSources receive events', async () => {
    const pems = selfsigned.generate([{ name: 'commonName', value: 'localhost' }], { days: 1, keySize: 2048 });
    const server = http2.createSecureServer({ key: pems.private, cert: pems.cert }, handler);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const counts = await countsAfterAWhile(`https://localhost:${(server.address() as AddressInfo).port}/`);
      expect(counts.every((c) => c > 0)).toBe(true);
    } finally {
      for (const stream of hub.group) stream.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  test('over HTTP/1.1 only six receive events: the browser holds the rest back', async () => {
    const server = http.createServer(handler);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const counts = await countsAfterAWhile(`http://localhost:${(server.address() as AddressInfo).port}/`);
      expect(counts.filter((c) => c > 0)).toHaveLength(6);
    } finally {
      for (const stream of hub.group) stream.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  test("EventSource.close() in Chromium sends nothing, yet the server's signal aborts within 1 s", async () => {
    const seen: { aborted: number; requests: number } = { aborted: 0, requests: 0 };
    let openedAt = 0;
    const server = http.createServer((req, res) => {
      if (req.url === '/') {
        res.writeHead(200, { 'content-type': 'text/html' });
        res.end('<!doctype html><title>close</title>');
        return;
      }
      if (req.url !== '/events') {
        res.writeHead(404).end();
        return;
      }
      seen.requests++;
      const stream = createEventStream(req, res, { keepalive: false });
      openedAt = Date.now();
      stream.signal.addEventListener('abort', () => {
        seen.aborted = Date.now();
      });
      stream.send('hello');
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const page = await browser.newPage();
    try {
      await page.goto(`http://localhost:${(server.address() as AddressInfo).port}/`);
      await page.evaluate(
        () =>
          new Promise<void>((resolve) => {
            const es = new EventSource('/events');
            es.onmessage = () => {
              es.close();
              resolve();
            };
          }),
      );
      const closedAt = Date.now();
      await expect.poll(() => seen.aborted, { timeout: 1000 }).toBeGreaterThan(0);
      expect(seen.aborted - closedAt).toBeLessThan(1000);
      expect(seen.aborted).toBeGreaterThanOrEqual(openedAt);
      // Closed for good: no reconnect.
      await page.waitForTimeout(300);
      expect(seen.requests).toBe(1);
    } finally {
      await page.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
