/**
 * Run sizes. `pnpm test:stress` sets `SSEKIT_STRESS=full` for the sizes whose figures go into the
 * README; the normal suite (and CI) runs the same code with reduced counts so it keeps working.
 */
export const FULL = process.env.SSEKIT_STRESS === 'full';

/** `full` under `SSEKIT_STRESS=full`, else `reduced`. */
export function size(full: number, reduced: number): number {
  return FULL ? full : reduced;
}
