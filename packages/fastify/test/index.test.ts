/**
 * The package as consumers load it: the built `dist/` through the package's `exports`, from
 * CommonJS (`require()`, Node >= 20.19) and from ESM, serving a real stream in a child process.
 * Builds first when dist is missing or stale (`pnpm test` has built already).
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, test } from 'vitest';
import { ensureBuilt } from '../../../scripts/ensure-built.js';

beforeAll(() => {
  ensureBuilt(['core', 'fastify']);
}, 120_000);

const run = promisify(execFile);
const packageDir = fileURLToPath(new URL('..', import.meta.url));

// Serves one stream with the plugin and reads its first event with fetch; prints one JSON line.
const serveAndRead = `
  const app = Fastify();
  app.register(plugin, { keepalive: false });
  app.get('/events', (request, reply) => { reply.sse().send('from ' + kind); });
  app.listen({ port: 0, host: '127.0.0.1' }).then(async (address) => {
    const response = await fetch(address + '/events', { headers: { accept: 'text/event-stream' } });
    const reader = response.body.getReader();
    const { value } = await reader.read();
    await reader.cancel();
    await app.close();
    console.log(JSON.stringify({
      kind,
      defaultIsPlugin: typeof plugin === 'function' && plugin === named,
      hasSseError: typeof SseError === 'function',
      status: response.status,
      type: response.headers.get('content-type'),
      body: new TextDecoder().decode(value),
    }));
  });
`;

async function node(args: string[]): Promise<Record<string, unknown>> {
  const { stdout } = await run(process.execPath, args, { cwd: packageDir, timeout: 20_000 });
  const line = stdout.trim().split('\n').pop() as string;
  return JSON.parse(line) as Record<string, unknown>;
}

describe('the built package', () => {
  test("CommonJS: require('@ssekit/fastify') gives the plugin and it serves a stream", async () => {
    const result = await node([
      '-e',
      `const kind = 'cjs';
       const mod = require('@ssekit/fastify');
       const plugin = mod.default; const named = mod.ssekit; const SseError = mod.SseError;
       const Fastify = require('fastify');
       ${serveAndRead}`,
    ]);
    expect(result).toEqual({
      kind: 'cjs',
      defaultIsPlugin: true,
      hasSseError: true,
      status: 200,
      type: 'text/event-stream; charset=utf-8',
      body: 'data: from cjs\n\n',
    });
  });

  test("ESM: import ssekit from '@ssekit/fastify' serves a stream", async () => {
    const result = await node([
      '--input-type=module',
      '-e',
      `const kind = 'esm';
       import plugin, { ssekit as named, SseError } from '@ssekit/fastify';
       import Fastify from 'fastify';
       ${serveAndRead}`,
    ]);
    expect(result).toMatchObject({ kind: 'esm', defaultIsPlugin: true, status: 200, body: 'data: from esm\n\n' });
  });
});
