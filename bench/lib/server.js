/**
 * The server process: hosts one variant (argv[2], a file in variants/) and obeys the driver over IPC.
 * Every figure that belongs to the server (CPU time, RSS, publish time) is taken here, by the process
 * itself, and sent back. Run with --expose-gc so RSS is read after a full collection.
 *
 * Messages (driver → server): { id, cmd, ...args }; each is answered with { id, ok, ...result }.
 *   count                          → { count } streams the variant holds
 *   mem                            → { rss, heap } after GC
 *   cpu                            → { cpu, t } CPU µs used so far, now (µs)
 *   burst { m, size, perTurn }     → { t0, cpu0 } answered when the first event is published;
 *                                     the burst publishes m events, perTurn per event-loop turn
 *   rate { rate, ms, size }        → { published } answered when done: `rate` events/s for `ms`, each
 *                                     carrying its publish time (µs) for the latency measurement
 *   exit                           → closes the server and exits
 */
import { isAbsolute } from 'node:path';
import { pathToFileURL } from 'node:url';
import { cpuUs, nowUs } from './clock.js';

const file = process.argv[2];
const keepalive = Number(process.env.BENCH_KEEPALIVE ?? 15_000);
// A bare name is one of ours in variants/; an absolute path is an extra one (--extra-variant).
const variant = await import(
  isAbsolute(file) ? pathToFileURL(file).href : new URL(`../variants/${file}`, import.meta.url).href
);
const server = await variant.start({ keepalive });

const gc = globalThis.gc ?? (() => {});

/** `~` marks a data event for the load generator; nothing else on the wire holds one. */
function payload(size) {
  return `~${'x'.repeat(Math.max(0, size - 1))}`;
}

/** `~<publish time µs>|xxx…`: the load generator reads the time and pads nothing. */
function timedPayload(size, padding) {
  const head = `~${nowUs()}|`;
  return size > head.length ? head + padding.slice(0, size - head.length) : head;
}

function burst({ m, size, perTurn }, reply) {
  const data = payload(size);
  let sent = 0;
  const cpu0 = cpuUs();
  const t0 = nowUs();
  reply({ t0, cpu0 });
  const turn = () => {
    const end = Math.min(m, sent + perTurn);
    for (; sent < end; sent++) server.publish(data);
    // Scheduled after this turn's publishes, so coalescing variants flush before the next batch.
    if (sent < m) setImmediate(turn);
  };
  turn();
}

function rate({ rate: perSecond, ms, size }, reply) {
  const padding = 'x'.repeat(size);
  const start = nowUs();
  const total = Math.max(1, Math.round((perSecond * ms) / 1000));
  let published = 0;
  const step = () => {
    // Catch up on any tick the timer was late for: the rate holds even under load.
    const due = Math.min(total, Math.floor(((nowUs() - start) * perSecond) / 1e6) + 1);
    while (published < due) {
      server.publish(timedPayload(size, padding));
      published++;
    }
    if (published >= total) {
      clearInterval(timer);
      reply({ published });
    }
  };
  const timer = setInterval(step, Math.max(1, Math.floor(1000 / perSecond / 2)));
  step();
}

process.on('message', async (message) => {
  const reply = (result) => process.send({ id: message.id, ok: true, ...result });
  try {
    switch (message.cmd) {
      case 'count':
        reply({ count: server.count() });
        break;
      case 'mem': {
        for (let i = 0; i < 3; i++) {
          gc();
          await new Promise((resolve) => setImmediate(resolve));
        }
        const { rss, heapUsed } = process.memoryUsage();
        reply({ rss, heap: heapUsed });
        break;
      }
      case 'cpu':
        reply({ cpu: cpuUs(), t: nowUs() });
        break;
      case 'burst':
        burst(message, reply);
        break;
      case 'rate':
        rate(message, reply);
        break;
      case 'exit':
        await Promise.race([server.close(), new Promise((resolve) => setTimeout(resolve, 2000))]);
        reply({});
        process.disconnect();
        process.exit(0);
        break;
      default:
        throw new Error(`unknown command ${message.cmd}`);
    }
  } catch (error) {
    process.send({ id: message.id, ok: false, error: String(error?.stack ?? error) });
  }
});

process.on('disconnect', () => process.exit(0));
process.send({ ready: true, port: server.port, pid: process.pid });
