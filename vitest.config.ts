import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const src = (pkg: string) => fileURLToPath(new URL(`./packages/${pkg}/src/index.ts`, import.meta.url));

export default defineConfig({
  resolve: {
    // Tests run against the sources; the build is checked by the CommonJS and example tests.
    alias: [
      {
        find: /^@ssekit\/core\/testing$/,
        replacement: fileURLToPath(new URL('./packages/core/src/testing.ts', import.meta.url)),
      },
      { find: /^@ssekit\/core$/, replacement: src('core') },
      { find: /^@ssekit\/express$/, replacement: src('express') },
      { find: /^@ssekit\/fastify$/, replacement: src('fastify') },
      { find: /^@ssekit\/redis$/, replacement: src('redis') },
      { find: /^@ssekit\/web$/, replacement: src('web') },
    ],
  },
  test: {
    include: [
      'packages/*/test/**/*.test.ts',
      'examples/*/test/**/*.test.ts',
      'bench/test/**/*.test.ts',
      'stress/**/*.test.ts',
    ],
    globalSetup: ['./scripts/test-setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    reporters: ['default', 'json'],
    outputFile: { json: '.ci/results.json' },
    typecheck: { enabled: true, include: ['packages/*/test/**/*.test-d.ts'], tsconfig: './tsconfig.test.json' },
  },
});
