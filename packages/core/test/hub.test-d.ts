import { createHub, type Hub } from '@ssekit/core';
import { describe, expectTypeOf, test } from 'vitest';

describe('typed hubs', () => {
  interface Topics {
    prices: { symbol: string; value: number };
    news: string;
  }
  const hub = createHub<Topics>();

  test('publish checks the payload against the topic', () => {
    expectTypeOf(hub).toEqualTypeOf<Hub<Topics>>();
    expectTypeOf(hub.publish('prices', { symbol: 'ACME', value: 1 })).resolves.toBeString();
    expectTypeOf(hub.publish('news', 'hello')).resolves.toBeString();
    // @ts-expect-error a number is not a news payload
    hub.publish('news', 42);
    // @ts-expect-error prices need a symbol
    hub.publish('prices', { value: 1 });
    // @ts-expect-error no such topic
    hub.publish('weather', 'sunny');
  });

  test('an untyped hub takes anything on any topic', () => {
    const loose = createHub();
    expectTypeOf(loose.publish('anything', { a: 1 })).resolves.toBeString();
    expectTypeOf(loose.publish(['a', 'b'], 'text')).resolves.toBeString();
  });
});
