/**
 * One clock for every process of the benchmark: `process.hrtime` reads CLOCK_MONOTONIC, which is
 * system-wide on Linux, so a timestamp taken in the server process can be compared with one taken in
 * the load generator (unlike `performance.now()`, whose origin is per process).
 */

/** Microseconds on the machine-wide monotonic clock. */
export function nowUs() {
  const [s, ns] = process.hrtime();
  return s * 1e6 + Math.floor(ns / 1e3);
}

/** CPU time (user + system, all threads) this process has used, in microseconds. */
export function cpuUs() {
  const { user, system } = process.cpuUsage();
  return user + system;
}
