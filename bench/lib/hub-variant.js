/**
 * What the four ssekit variants share: one hub with topic `t`, the benchmark's `publish`/`count`
 * contract over it, and (for the node:http ones) the request handler that opens a stream per client.
 */
import { createEventStream } from '@ssekit/core';
import { isEvents } from './listen.js';

/** `publish` and `count` over `hub`, reporting failures under `name`. */
export function hubVariant(hub, name) {
  const report = (error) => console.error(`[bench ${name}]`, error);
  return {
    report,
    publish(data) {
      hub.publish('t', data).catch(report);
    },
    count: () => hub.group.size,
  };
}

/** A node:http handler: `/events` opens a stream in the hub's group and subscribes it to `t`. */
export function streamHandler(hub, keepalive, report) {
  return (req, res) => {
    if (!isEvents(req)) {
      res.statusCode = 404;
      res.end();
      return;
    }
    const stream = createEventStream(req, res, { keepalive, group: hub.group });
    hub.subscribe(stream, 't').catch(report);
  };
}
