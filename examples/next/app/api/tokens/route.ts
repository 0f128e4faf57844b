// GET /api/tokens?prompt=…  →  a text/event-stream of `{ index, text }` messages, then `event: done`.
import { sse } from '@ssekit/web';
import { answerFor, fakeGenerator, type Token } from '../../../lib/tokens';

// Never prerender or cache: every request gets its own stream.
export const dynamic = 'force-dynamic';
// The Node.js runtime is the default for route handlers; written out because this route does not work
// on 'edge' (see docs/runtimes/next.md).
export const runtime = 'nodejs';

type Item = Token | { done: true; count: number };

async function* withDone(prompt: string, from: number): AsyncGenerator<Item> {
  yield* fakeGenerator(prompt, { from });
  yield { done: true, count: answerFor(prompt).length };
}

export function GET(request: Request): Promise<Response> {
  const prompt = new URL(request.url).searchParams.get('prompt') ?? '';
  // EventSource reconnects by itself after a dropped connection and sends the last id it got: carry
  // on after that word instead of starting the answer again.
  const last = Number.parseInt(request.headers.get('last-event-id') ?? '', 10);
  const from = Number.isInteger(last) && last >= 0 ? last + 1 : 0;
  // ssekit pipes the generator into the response and ends the response when it ends. When the
  // client goes away, it calls the generator's return(): its `finally` runs and nothing more is made.
  return sse(request, {
    source: withDone(prompt, from),
    map: (item) =>
      'done' in item
        ? { event: 'done', data: { count: item.count } }
        : { id: String(item.index), data: { index: item.index, text: item.text } },
  });
}
