/**
 * A health-check poller: what a load balancer does. Each probe opens a new connection (no keep-alive,
 * so the accept queue is part of what is measured) and times the whole answer.
 */
import { get } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { percentile } from './raw-http.js';

/** One answer of the health route. */
export interface ProbeAnswer {
  ms: number;
  status: number;
  body: string;
}

/** GETs `path` on a new connection; resolves with the time from request to the last byte. */
export function probeOnce(port: number, path: string, timeout = 10_000): Promise<ProbeAnswer> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = get({ host: '127.0.0.1', port, path, agent: false, timeout }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
      });
      res.on('end', () => resolve({ ms: performance.now() - started, status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeout} ms`)));
    req.on('error', reject);
  });
}

/** Polls a health route every `interval` ms until stopped; checks each answer with `check`. */
export class HealthPoller {
  readonly latencies: number[] = [];
  readonly failures: string[] = [];
  readonly #done: Promise<void>;
  #running = true;

  constructor(port: number, path: string, interval: number, check: (answer: ProbeAnswer) => string | undefined) {
    this.#done = (async () => {
      while (this.#running) {
        try {
          const answer = await probeOnce(port, path);
          this.latencies.push(answer.ms);
          const problem = answer.status === 200 ? check(answer) : `status ${answer.status}`;
          if (problem !== undefined && this.failures.length < 20) this.failures.push(problem);
        } catch (error) {
          if (this.failures.length < 20) this.failures.push((error as Error).message);
        }
        await sleep(interval);
      }
    })();
  }

  /** Stops polling and returns p50/p99/max of the latencies in ms. */
  async stop(): Promise<{ probes: number; p50: number; p99: number; max: number }> {
    this.#running = false;
    await this.#done;
    const sorted = [...this.latencies].sort((a, b) => a - b);
    const round = (ms: number): number => Math.round(ms * 100) / 100;
    return {
      probes: sorted.length,
      p50: round(percentile(sorted, 50)),
      p99: round(percentile(sorted, 99)),
      max: round(sorted.at(-1) ?? Number.NaN),
    };
  }
}
