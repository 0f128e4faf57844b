/**
 * Vitest global setup: the Next.js example's `next build` runs here, once, before the test files start
 * in parallel. Built inside the run (in the example's `beforeAll`), it took both cores for several
 * seconds while timing-sensitive browser tests ran beside it. It is skipped when `.next/` is current.
 */
import { buildNext } from '../examples/next/test/next.js';

export default async function setup(): Promise<void> {
  await buildNext();
}
