/**
 * What the stream tests share: a real node:http server on an ephemeral port, cleanups that run after
 * each test (servers, schedulers, sockets), and waiting for a condition instead of sleeping.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KeepaliveScheduler } from '@ssekit/core';
import { afterEach } from 'vitest';

export type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** Run after the current test, last registered first. */
export const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** Serves `handler` on 127.0.0.1 and an ephemeral port until the test ends. */
export function serve(handler: Handler): Promise<{ port: number; url: string }> {
  return listen(createServer(handler));
}

/** Listens with `server` on 127.0.0.1 and an ephemeral port; closed (connections too) when the test ends. */
export async function listen(server: Server): Promise<{ port: number; url: string }> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return { port, url: `http://127.0.0.1:${port}` };
}

/** A private scheduler, stopped when the test ends. */
export function scheduler(): KeepaliveScheduler {
  const s = new KeepaliveScheduler();
  cleanups.push(() => s.stop());
  return s;
}

/** Resolves once `condition()` holds; fails the test after `timeout` ms naming `what`. */
export async function until(condition: () => boolean, what: string, timeout = 5000): Promise<void> {
  const start = Date.now();
  while (!condition()) {
    if (Date.now() - start > timeout) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Collects uncaught exceptions and unhandled rejections until the test ends (they must stay empty). */
export function watchProcess(): unknown[] {
  const errors: unknown[] = [];
  const onError = (err: unknown) => errors.push(err);
  process.on('uncaughtException', onError);
  process.on('unhandledRejection', onError);
  cleanups.push(() => {
    process.off('uncaughtException', onError);
    process.off('unhandledRejection', onError);
  });
  return errors;
}
