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
});
