/** 5. ssekit core on node:http: `createEventStream()` per request, subscribed to a hub; `hub.publish()`. */
import http from 'node:http';
import { createEventStream, createHub } from '@ssekit/core';
import { isEvents, listen, shut } from '../lib/listen.js';

export async function start({ keepalive }) {
  const hub = createHub();
  const report = (error) => console.error('[bench ssekit-core]', error);
  const server = http.createServer((req, res) => {
    if (!isEvents(req)) {
      res.statusCode = 404;
      res.end();
      return;
    }
    const stream = createEventStream(req, res, { keepalive, group: hub.group });
    hub.subscribe(stream, 't').catch(report);
  });
  const port = await listen(server);
  return {
    port,
    publish(data) {
      hub.publish('t', data).catch(report);
    },
    count: () => hub.group.size,
    close: async () => {
      await hub.close();
      await shut(server);
    },
  };
}
