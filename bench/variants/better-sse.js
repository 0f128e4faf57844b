/** 3. better-sse: one Session per request, registered on a Channel; publishing is `channel.broadcast()`. */
import http from 'node:http';
import { createChannel, createSession } from 'better-sse';
import { isEvents, listen, shut } from '../lib/listen.js';

export async function start({ keepalive }) {
  const channel = createChannel();
  const server = http.createServer(async (req, res) => {
    if (!isEvents(req)) {
      res.statusCode = 404;
      res.end();
      return;
    }
    // Resolves once the session has sent its head (next turn); only then can it join a channel.
    const session = await createSession(req, res, { keepAlive: keepalive });
    if (session.isConnected) channel.register(session);
  });
  const port = await listen(server);
  return {
    port,
    publish(data) {
      try {
        channel.broadcast(data, 'message');
      } catch {
        // A session that left during the broadcast: better-sse throws from push().
      }
    },
    count: () => channel.sessionCount,
    close: () => shut(server),
  };
}
