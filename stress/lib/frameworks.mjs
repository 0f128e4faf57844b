// The stress servers load the built adapters and the frameworks those adapters were installed with.
// stress/ is not a workspace package and has no node_modules of its own, so Express and Fastify are
// resolved from the adapter packages that depend on them (the same copies the adapters' tests use).
import { createRequire } from 'node:module';

const fromExpressAdapter = createRequire(new URL('../../packages/express/package.json', import.meta.url));
const fromFastifyAdapter = createRequire(new URL('../../packages/fastify/package.json', import.meta.url));

/** Express 5, as `@ssekit/express` is developed against. */
export const express = fromExpressAdapter('express');
/** Fastify 5, as `@ssekit/fastify` is developed against. */
export const Fastify = fromFastifyAdapter('fastify');

/**
 * Answers the parent's IPC requests `{ id, cmd, arg }` with `{ id, ok, result | error }`. `commands`
 * maps a command name to an (async) function of `arg`.
 */
export function serveCommands(commands) {
  // If the test process goes away (a timed-out or killed worker), so does the server.
  process.on('disconnect', () => process.exit(1));
  process.on('message', async (message) => {
    const { id, cmd, arg } = message;
    try {
      const command = commands[cmd];
      if (command === undefined) throw new Error(`unknown command ${cmd}`);
      const result = await command(arg);
      process.send({ id, ok: true, result });
    } catch (error) {
      process.send({ id, ok: false, error: String(error?.stack ?? error) });
    }
  });
}

/** Open sockets of a `node:http` server (what is left after every client went away). */
export function connectionsOf(server) {
  return new Promise((resolve, reject) => server.getConnections((err, n) => (err ? reject(err) : resolve(n))));
}

/** Tells the parent the server is up, with what it needs to know (ports, sizes). */
export function announce(ready) {
  process.send({ ready });
}
