/** Listening the same way in every variant: loopback, ephemeral port, a backlog for 10,000 clients. */
export const BACKLOG = 4096;

/** Listens `server` (a node:http server) and resolves to its port. */
export function listen(server) {
  server.maxConnections = 1_000_000;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port: 0, host: '127.0.0.1', backlog: BACKLOG }, () => {
      server.off('error', reject);
      resolve(server.address().port);
    });
  });
}

/** Closes `server` and every connection it holds. */
export function shut(server) {
  return new Promise((resolve) => {
    server.closeAllConnections?.();
    server.close(() => resolve());
  });
}

/** Answers anything but GET /events with 404, so stray requests never count as streams. */
export function isEvents(req) {
  return req.method === 'GET' && req.url !== undefined && req.url.startsWith('/events');
}
