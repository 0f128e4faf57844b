/**
 * 2. The hand-coalesced node:http server: the practical ceiling. Each event is framed once; the frames
 * of one event-loop turn are joined and encoded to bytes once, and each socket gets ONE write per turn
 * of that same Buffer. A client whose unsent bytes pass 256 KiB (the ssekit default bound) is dropped,
 * so memory stays bounded. One timer for all heartbeats: with a single broadcast topic every client
 * received the last broadcast, so "idle" is a global fact and the timer writes only when nothing was
 * broadcast for a whole interval.
 */
import http from 'node:http';
import { isEvents, listen, shut } from '../lib/listen.js';

const HWM = 256 * 1024;
const HEARTBEAT = Buffer.from(':\n\n');

export async function start({ keepalive }) {
  const clients = new Set();
  let seq = 0;
  let pending = [];
  let scheduled = false;
  let lastBroadcast = Date.now();

  const writeAll = (chunk) => {
    for (const res of clients) {
      if (res.writableLength > HWM) {
        clients.delete(res);
        res.destroy();
        continue;
      }
      res.write(chunk);
    }
  };

  const flush = () => {
    scheduled = false;
    const text = pending.length === 1 ? pending[0] : pending.join('');
    pending = [];
    lastBroadcast = Date.now();
    writeAll(Buffer.from(text));
  };

  const server = http.createServer((req, res) => {
    if (!isEvents(req)) {
      res.statusCode = 404;
      res.end();
      return;
    }
    res.writeHead(200, {
      'Content-Type': 'text/event-stream',
      'Cache-Control': 'no-cache',
      Connection: 'keep-alive',
    });
    res.flushHeaders();
    clients.add(res);
    res.on('close', () => clients.delete(res));
  });
  const timer = setInterval(
    () => {
      if (Date.now() - lastBroadcast >= keepalive - 1) {
        lastBroadcast = Date.now();
        writeAll(HEARTBEAT);
      }
    },
    Math.min(1000, keepalive / 4),
  );
  timer.unref();
  const port = await listen(server);
  return {
    port,
    publish(data) {
      pending.push(`id: ${++seq}\ndata: ${data}\n\n`);
      if (!scheduled) {
        scheduled = true;
        setImmediate(flush);
      }
    },
    count: () => clients.size,
    close: () => {
      clearInterval(timer);
      return shut(server);
    },
  };
}
