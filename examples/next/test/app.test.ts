// Builds the Next.js example (`next build`, skipped when .next/ is up to date), starts it with
// `next start`, and checks the token stream over HTTP and in Chromium: every token in order then
// `done`, resume after Last-Event-ID, and a client that leaves stops the generator.
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ensureBuilt } from '../../../scripts/ensure-built.js';
import { describeBrowser, launchChromium } from '../../_test/browser.js';
import { answerFor, type TokenStats } from '../lib/tokens.js';
import { buildNext, type NextServer, startNext } from './next.js';

let server: NextServer | undefined;
const url = (path: string) => {
  if (!server) throw new Error('next start is not running (beforeAll failed?)');
  return `${server.url}${path}`;
};

beforeAll(async () => {
  ensureBuilt(['core', 'web']);
  await buildNext();
  server = await startNext();
}, 360_000);

afterAll(async () => {
  await server?.stop();
});

const PROMPT = 'route handlers';
const ANSWER = answerFor(PROMPT);

const getStats = async (): Promise<TokenStats> => (await fetch(url('/api/stats'))).json();

/** Polls /api/stats until `stopped` exceeds `before`; resolves with the time it took. */
async function stoppedAfter(before: number, within = 2000): Promise<number> {
  const started = Date.now();
  for (;;) {
    const { stopped } = await getStats();
    if (stopped > before) return Date.now() - started;
    if (Date.now() - started > within)
      throw new Error(`no generator stopped within ${within} ms (stopped: ${stopped})`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

interface Frame {
  event: string;
  id: string;
  data: string;
}

/** Reads GET /api/tokens until it ends, or until `until` says so (then leaves). */
async function readTokens(headers: Record<string, string> = {}, until?: (frames: Frame[]) => boolean) {
  const controller = new AbortController();
  const res = await fetch(url(`/api/tokens?prompt=${encodeURIComponent(PROMPT)}`), {
    headers: { accept: 'text/event-stream', ...headers },
    signal: controller.signal,
  });
  const { EventStreamParser } = await import('@ssekit/core/testing');
  const frames: Frame[] = [];
  const parser = new EventStreamParser((e) => frames.push({ event: e.type, id: e.lastEventId, data: e.data }));
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    parser.feed(chunk);
    if (until?.(frames)) break;
  }
  // Leaving (a no-op when the stream had ended by itself).
  controller.abort();
  return { res, frames };
}

describe('next example over HTTP', () => {
  test('GET /api/tokens: every token in order with its index as id, then `event: done`; the response ends', async () => {
    const { res, frames } = await readTokens({ 'accept-encoding': 'gzip, deflate, br' });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(res.headers.get('cache-control')).toMatch(/no-cache/);
    // Next compresses responses by default; `Cache-Control: no-transform` keeps it off the stream.
    expect(res.headers.get('content-encoding')).toBeNull();
    const messages = frames.filter((f) => f.event === 'message');
    expect(messages.map((f) => f.id)).toEqual(ANSWER.map((_, i) => String(i)));
    expect(messages.map((f) => JSON.parse(f.data).text)).toEqual(ANSWER);
    expect(frames.at(-1)).toMatchObject({ event: 'done' });
    expect(JSON.parse(frames.at(-1)?.data ?? '')).toEqual({ count: ANSWER.length });
  });

  test('a reconnect with Last-Event-ID carries on after that token', async () => {
    const { frames } = await readTokens({ 'last-event-id': '5' }, (f) => f.length >= 2);
    expect(frames.slice(0, 2).map((f) => [f.id, JSON.parse(f.data).text])).toEqual([
      ['6', ANSWER[6]],
      ['7', ANSWER[7]],
    ]);
  });

  test('a client that aborts stops the generator (its finally runs) within 2 s', async () => {
    const before = (await getStats()).stopped;
    await readTokens({}, (f) => f.length >= 3);
    const ms = await stoppedAfter(before);
    console.log(`[next] generator stopped ${ms} ms after fetch() aborted`);
  });

  test('the page is a plain HTML page with no external assets', async () => {
    const res = await fetch(url('/'));
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    const html = await res.text();
    expect(html).toContain('id="ask"');
    // Everything it loads comes from this server.
    const external = [...html.matchAll(/(?:src|href)="(https?:[^"]*)"/g)].map((m) => m[1]);
    expect(external).toEqual([]);
  });
});

describeBrowser('next example in Chromium', () => {
  let browser: Browser | undefined;
  beforeAll(async () => {
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
  });

  async function open(): Promise<Page> {
    if (!browser) throw new Error('Chromium is not running');
    const page = await browser.newPage();
    const outside: string[] = [];
    page.on('request', (req) => {
      if (!req.url().startsWith(url('/')) && !req.url().startsWith('data:')) outside.push(req.url());
    });
    await page.goto(url('/'));
    // Hydrated: React has attached the click handler once the button reflects the state.
    await page.waitForSelector('#status[data-status="idle"]');
    await page.waitForFunction(() => {
      const el = document.getElementById('ask');
      return el !== null && Object.keys(el).some((k) => k.startsWith('__reactProps'));
    });
    (page as Page & { outside?: string[] }).outside = outside;
    return page;
  }
  const tokensShown = (page: Page) =>
    page.$$eval('#answer span[data-index]', (els) =>
      els.map((el) => [Number(el.getAttribute('data-index')), el.textContent]),
    );

  test('clicking Ask streams every token in order, then done', async () => {
    const page = await open();
    try {
      await page.fill('#prompt', PROMPT);
      await page.click('#ask');
      await page.waitForSelector('#status[data-status="streaming"]');
      await page.waitForSelector('#status[data-status="done"]', { timeout: 15_000 });
      expect(await tokensShown(page)).toEqual(ANSWER.map((text, i) => [i, text]));
      expect(await page.textContent('#answer')).toBe(ANSWER.join(''));
      expect((page as Page & { outside?: string[] }).outside).toEqual([]);
    } finally {
      await page.close();
    }
  });

  test('closing the page mid-answer stops the generator within 2 s', async () => {
    const page = await open();
    await page.fill('#prompt', PROMPT);
    await page.click('#ask');
    await page.waitForFunction(() => document.querySelectorAll('#answer span[data-index]').length >= 3);
    const before = (await getStats()).stopped;
    await page.close();
    const ms = await stoppedAfter(before);
    console.log(`[next] generator stopped ${ms} ms after the page closed`);
  });

  test('the Stop button (EventSource.close()) stops the generator within 2 s', async () => {
    const page = await open();
    try {
      await page.fill('#prompt', PROMPT);
      await page.click('#ask');
      await page.waitForFunction(() => document.querySelectorAll('#answer span[data-index]').length >= 3);
      const before = (await getStats()).stopped;
      await page.click('#stop');
      await page.waitForSelector('#status[data-status="stopped"]');
      await stoppedAfter(before);
      const shown = (await tokensShown(page)).length;
      expect(shown).toBeLessThan(ANSWER.length);
    } finally {
      await page.close();
    }
  });
});
