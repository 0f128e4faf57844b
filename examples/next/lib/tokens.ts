// A stand-in for a language model: yields the words of a canned answer one by one, with a small
// delay, and keeps count of the generators that ran and of those that were stopped half-way.

export interface Token {
  /** The position of the word in the answer (0, 1, 2…): the event's id, so a reconnect can resume. */
  index: number;
  /** The word with the space before it, as a model's token would have. */
  text: string;
}

export interface TokenStats {
  /** Generators started. */
  started: number;
  /** Generators whose `finally` ran, for whatever reason. */
  finished: number;
  /** Of those, the ones that ended before their last word: the client left and ssekit stopped them. */
  stopped: number;
}

// /api/tokens and /api/stats must see the same counters. Next does not promise that two routes share
// one instance of a module (and `next dev` evaluates modules again after an edit), so the counters
// live on globalThis, which the one Node process shares.
const key = Symbol.for('ssekit.example-next.stats');
const store = globalThis as typeof globalThis & { [key]?: TokenStats };
store[key] ??= { started: 0, finished: 0, stopped: 0 };
export const stats: TokenStats = store[key];

export function answerFor(prompt: string): string[] {
  const topic = prompt.trim() || 'Server-Sent Events';
  return `You asked about ${topic}. Server-Sent Events send a stream of text from the server to the browser over one plain HTTP response. The browser reads it with EventSource, which reconnects by itself and sends Last-Event-ID so the server can carry on where it stopped. A route handler returns the stream as a Response, and ssekit writes the frames, the headers and the heartbeats, and stops this generator when the reader goes away.`
    .split(' ')
    .map((word, i) => (i === 0 ? word : ` ${word}`));
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Yields the answer's words from `from` on, one every `delay` ms. */
export async function* fakeGenerator(prompt: string, { from = 0, delay = 40 } = {}): AsyncGenerator<Token> {
  const words = answerFor(prompt);
  let index = from;
  stats.started++;
  try {
    for (; index < words.length; index++) {
      await sleep(delay);
      yield { index, text: words[index] as string };
    }
  } finally {
    // Runs when the answer is complete, and also when ssekit calls return() because the client left.
    stats.finished++;
    if (index < words.length) stats.stopped++;
  }
}
