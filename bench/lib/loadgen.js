/**
 * The load generator process: N raw TCP connections, each a minimal HTTP/1.1 `GET /events`, counting
 * delivered events cheaply. Every data event the servers send carries exactly one `~` (the payload
 * starts with it) and nothing else on the wire does — not the chunked-encoding framing (hex sizes and
 * CRLF), not heartbeats (`:` comments), not id-only or retry frames, not the ids (numbers, base-36,
 * UUIDs) — so counting `~` bytes in the body with `Buffer.indexOf` counts data events exactly, and a
 * `~` split across two reads cannot happen (it is one byte). In latency mode the digits after `~` are
 * the publish time (µs, machine-wide monotonic clock) and are parsed across read boundaries.
 *
 * Messages (driver → loadgen): { id, cmd, ...args }; each answered with { id, ok, ...result }.
 *   connect { port, n, slowEvery, concurrency, spread }  → { connected, failed, ms, errors }
 *   expect { m, latency, skipSlow, timeoutMs }           → { targets }: arms the count of m more
 *        events on every open (and, with skipSlow, reading) connection
 *   wait                                                 → { done, t, reached, targets, lost } once
 *        every targeted connection has them (t: µs of that read) or the timeout passed
 *   pauseSlow                                            → stops reading on the slow connections
 *   verify                                               → { min, max, closed, targets } since expect
 *   latency                                              → { p50, p90, p99, max, samples } (µs)
 *   cpu                                                  → { cpu, t }: its own CPU µs so far, now
 *   close                                                → destroys every connection
 */
import net from 'node:net';
import { cpuUs, nowUs } from './clock.js';

const TILDE = 0x7e;
const HEAD_END = Buffer.from('\r\n\r\n');
const READ_BUFFER = Buffer.allocUnsafe(256 * 1024);

/** @type {Conn[]} */
let conns = [];
let latencyOn = false;
let samples = new Float64Array(1 << 16);
let sampleCount = 0;
/** The armed `expect`: finished when `remaining` reaches 0 or on timeout. */
let expectation;
/** Its outcome, for `wait`. */
let pending = Promise.resolve({ done: false, t: 0, targets: 0, reached: 0, lost: 0 });

class Conn {
  constructor(index, slow) {
    this.index = index;
    this.slow = slow;
    this.socket = undefined;
    this.head = undefined;
    this.open = false;
    this.closed = false;
    this.count = 0;
    this.base = 0;
    this.target = -1;
    this.partial = -1;
    this.settle = undefined;
  }
}

function record(latency) {
  if (sampleCount === samples.length) {
    const bigger = new Float64Array(samples.length * 2);
    bigger.set(samples);
    samples = bigger;
  }
  samples[sampleCount++] = latency;
}

/** Parses the digits of a publish time from `start`; returns the index after them, or -1 if cut off. */
function digits(conn, buf, start, now) {
  let v = Math.max(conn.partial, 0);
  let j = start;
  const len = buf.length;
  while (j < len) {
    const c = buf[j];
    if (c < 48 || c > 57) break;
    v = v * 10 + (c - 48);
    j++;
  }
  if (j === len) {
    conn.partial = v;
    return -1;
  }
  conn.partial = -1;
  record(now - v);
  return j;
}

function onBody(conn, buf, start) {
  const before = conn.count;
  if (latencyOn) {
    const now = nowUs();
    let from = start;
    if (conn.partial >= 0) {
      from = digits(conn, buf, start, now);
      if (from === -1) return;
    }
    let i = buf.indexOf(TILDE, from);
    while (i !== -1) {
      conn.count++;
      const next = digits(conn, buf, i + 1, now);
      if (next === -1) break;
      i = buf.indexOf(TILDE, next);
    }
  } else {
    let i = buf.indexOf(TILDE, start);
    while (i !== -1) {
      conn.count++;
      i = buf.indexOf(TILDE, i + 1);
    }
  }
  if (conn.target >= 0 && before < conn.target && conn.count >= conn.target) reached();
}

function reached() {
  const e = expectation;
  if (e === undefined) return;
  e.remaining--;
  if (e.remaining === 0) e.finish(true);
}

function onRead(conn, chunk) {
  if (conn.open) {
    onBody(conn, chunk, 0);
    return;
  }
  // The shared buffer is reused by the next read: keep a copy of an unfinished head.
  conn.head = conn.head === undefined ? Buffer.from(chunk) : Buffer.concat([conn.head, chunk]);
  const end = conn.head.indexOf(HEAD_END);
  if (end === -1) return;
  const head = conn.head.toString('latin1', 0, end);
  const rest = conn.head;
  conn.head = undefined;
  if (!head.startsWith('HTTP/1.1 200')) {
    conn.socket.destroy();
    conn.settle(head.split('\r\n')[0]);
    return;
  }
  conn.open = true;
  conn.settle(undefined);
  onBody(conn, rest, end + 4);
}

function openOne(conn, port, spread) {
  return new Promise((resolve) => {
    const options = {
      port,
      host: '127.0.0.1',
      // Reads land in one shared buffer and reach us without the stream machinery or an allocation
      // per read: with 10,000 sockets the load generator must stay far cheaper than the servers.
      onread: { buffer: READ_BUFFER, callback: (nread, buf) => onRead(conn, buf.subarray(0, nread)) },
    };
    if (spread > 1) options.localAddress = `127.0.0.${1 + (conn.index % spread)}`;
    const socket = net.connect(options);
    conn.socket = socket;
    let settled = false;
    const settle = (error) => {
      if (settled) return;
      settled = true;
      resolve(error);
    };
    conn.settle = settle;
    socket.on('connect', () => {
      socket.write(`GET /events HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAccept: text/event-stream\r\n\r\n`);
    });
    const gone = (error) => {
      if (conn.closed) return;
      conn.closed = true;
      conn.open = false;
      settle(error ? (error.code ?? String(error)) : 'closed before the response head');
      // A targeted connection that closed will never reach its target: stop waiting for it (verify
      // then reports it short).
      if (expectation !== undefined && conn.target >= 0 && conn.count < conn.target) {
        expectation.lost++;
        reached();
      }
    };
    socket.on('error', gone);
    socket.on('close', () => gone(undefined));
  });
}

async function connect({ port, n, slowEvery = 0, concurrency = 256, spread = 1 }) {
  const t0 = Date.now();
  conns = [];
  for (let i = 0; i < n; i++) conns.push(new Conn(i, slowEvery > 0 && i % slowEvery === slowEvery - 1));
  const errors = {};
  let failed = 0;
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const conn = conns[next++];
      const error = await openOne(conn, port, spread);
      if (error !== undefined) {
        failed++;
        errors[error] = (errors[error] ?? 0) + 1;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, worker));
  return { connected: n - failed, failed, ms: Date.now() - t0, errors };
}

/** Arms the targets at once (so the driver can then start publishing) and returns the wait. */
function expect({ m, latency = false, skipSlow = false, timeoutMs = 60_000 }) {
  if (expectation !== undefined) expectation.finish(false);
  return new Promise((resolve) => {
    latencyOn = latency;
    sampleCount = 0;
    let targets = 0;
    for (const conn of conns) {
      conn.base = conn.count;
      conn.partial = -1;
      if (conn.open && !(skipSlow && conn.slow)) {
        conn.target = conn.count + m;
        targets++;
      } else {
        conn.target = -1;
      }
    }
    const e = {
      remaining: targets,
      lost: 0,
      finish(done) {
        if (expectation !== e) return;
        const t = nowUs();
        clearTimeout(e.timer);
        expectation = undefined;
        let reachedCount = 0;
        for (const conn of conns) if (conn.target >= 0 && conn.count >= conn.target) reachedCount++;
        resolve({ done, t, targets, reached: reachedCount, lost: e.lost });
      },
    };
    e.timer = setTimeout(() => e.finish(false), timeoutMs);
    expectation = e;
    if (targets === 0) e.finish(true);
  });
}

function verify() {
  let min = Number.POSITIVE_INFINITY;
  let max = 0;
  let closed = 0;
  let targets = 0;
  for (const conn of conns) {
    if (conn.closed) closed++;
    if (conn.target < 0) continue;
    targets++;
    const got = conn.count - conn.base;
    if (got < min) min = got;
    if (got > max) max = got;
  }
  return { min: targets ? min : 0, max, closed, targets };
}

function latencyStats() {
  const sorted = samples.slice(0, sampleCount).sort();
  const at = (q) => (sampleCount ? sorted[Math.min(sampleCount - 1, Math.floor(q * sampleCount))] : 0);
  latencyOn = false;
  return {
    samples: sampleCount,
    p50: at(0.5),
    p90: at(0.9),
    p99: at(0.99),
    max: sampleCount ? sorted[sampleCount - 1] : 0,
  };
}

async function closeAll() {
  await Promise.all(
    conns.map(
      (conn) =>
        new Promise((resolve) => {
          if (conn.socket === undefined || conn.socket.destroyed) return resolve();
          conn.socket.once('close', resolve);
          conn.socket.destroy();
        }),
    ),
  );
  conns = [];
}

process.on('message', async (message) => {
  const reply = (result) => process.send({ id: message.id, ok: true, ...result });
  try {
    switch (message.cmd) {
      case 'connect':
        reply(await connect(message));
        break;
      case 'expect': {
        pending = expect(message);
        let targets = 0;
        for (const conn of conns) if (conn.target >= 0) targets++;
        reply({ targets });
        break;
      }
      case 'wait':
        reply(await pending);
        break;
      case 'pauseSlow': {
        let paused = 0;
        for (const conn of conns) {
          if (conn.slow && conn.socket) {
            conn.socket.pause();
            paused++;
          }
        }
        reply({ paused });
        break;
      }
      case 'verify':
        reply(verify());
        break;
      case 'cpu':
        reply({ cpu: cpuUs(), t: nowUs() });
        break;
      case 'latency':
        reply(latencyStats());
        break;
      case 'close':
        await closeAll();
        reply({});
        break;
      case 'exit':
        for (const conn of conns) conn.socket?.destroy();
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
process.send({ ready: true });
