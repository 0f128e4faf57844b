// The built package, loaded the way consumers load it: CommonJS require() of the ESM build (Node ≥ 20.19
// loads ES modules from require() without a flag) and ESM import, with Express 5 and Express 4.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, test } from 'vitest';
import { ensureBuilt, ROOT as root } from '../../../scripts/ensure-built.js';

const run = promisify(execFile);

beforeAll(() => {
  ensureBuilt(['core', 'express']);
}, 120_000);

// Serves one stream on an ephemeral port, reads it with node:http, prints what came over the wire.
const program = (load: 'require' | 'import', expressName: string) => `
${
  load === 'require'
    ? `const { sse, SseError } = require('@ssekit/express'); const express = require('${expressName}');`
    : `const { sse, SseError } = await import('@ssekit/express'); const { default: express } = await import('${expressName}');`
}
const http = require('node:http');
const app = express();
app.get('/e', sse({ keepalive: false }), (req, res) => { res.sse.send({ via: '${load}' }, { id: '1' }); res.sse.close(); });
const server = app.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  http.get({ port, host: '127.0.0.1', path: '/e', headers: { accept: 'text/event-stream' } }, (res) => {
    let body = '';
    res.setEncoding('utf8');
    res.on('data', (c) => { body += c; });
    res.on('end', () => {
      console.log(JSON.stringify({ status: res.statusCode, type: res.headers['content-type'], body, error: typeof SseError }));
      server.close();
    });
  });
});
`;

describe.each(['express', 'express4'])('the built package with %s', (expressName) => {
  test.each(['require', 'import'] as const)('%s() works on this Node without flags', async (load) => {
    const code = load === 'require' ? program(load, expressName) : `(async () => {${program(load, expressName)}})()`;
    const { stdout, stderr } = await run(process.execPath, ['-e', code], {
      cwd: `${root}packages/express`,
      timeout: 20_000,
    });
    expect(stderr).toBe('');
    expect(JSON.parse(stdout)).toEqual({
      status: 200,
      type: 'text/event-stream; charset=utf-8',
      body: `id: 1\ndata: {"via":"${load}"}\n\n`,
      error: 'function',
    });
  });
});

test('this Node loads ES modules from require() (>= 20.19)', () => {
  const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
  expect(major > 20 || (major === 20 && minor >= 19)).toBe(true);
  expect(process.features).toHaveProperty('require_module', true);
});
