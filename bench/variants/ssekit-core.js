/** 5. ssekit core on node:http: `createEventStream()` per request, subscribed to a hub; `hub.publish()`. */
import http from 'node:http';
import { createHub } from '@ssekit/core';
import { hubVariant, streamHandler } from '../lib/hub-variant.js';
import { listen, shut } from '../lib/listen.js';

export async function start({ keepalive }) {
  const hub = createHub();
  const variant = hubVariant(hub, 'ssekit-core');
  const server = http.createServer(streamHandler(hub, keepalive, variant.report));
  const port = await listen(server);
  return {
    port,
    publish: variant.publish,
    count: variant.count,
    close: async () => {
      await hub.close();
      await shut(server);
    },
  };
}
