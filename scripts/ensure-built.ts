/**
 * For tests that load the BUILT packages (CommonJS consumers, example servers, stress servers in child
 * processes): makes sure `dist/` exists and is not older than `src/`, building with `tsc -b` when
 * needed. `pnpm test` has built already, so this is only work when a test file is run on its own.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The workspace root, with a trailing slash. */
export const ROOT = fileURLToPath(new URL('../', import.meta.url));

function newest(dir: string): number {
  let time = 0;
  for (const name of readdirSync(dir)) time = Math.max(time, statSync(join(dir, name)).mtimeMs);
  return time;
}

/** Builds `packages/<pkg>` for each of `packages` whose dist is missing or stale. */
export function ensureBuilt(packages: readonly string[]): void {
  const stale = packages.filter((pkg) => {
    const dir = join(ROOT, 'packages', pkg);
    // tsc leaves unchanged outputs alone, so compare the newest file on each side.
    return !existsSync(join(dir, 'dist/index.js')) || newest(join(dir, 'dist')) < newest(join(dir, 'src'));
  });
  if (stale.length === 0) return;
  try {
    execFileSync(
      process.execPath,
      [join(ROOT, 'node_modules/typescript/bin/tsc'), '-b', ...stale.map((pkg) => `packages/${pkg}`)],
      { cwd: ROOT, stdio: 'pipe' },
    );
  } catch (error) {
    // A type error still emits JavaScript; only a missing dist stops the run.
    for (const pkg of stale) {
      if (!existsSync(join(ROOT, 'packages', pkg, 'dist/index.js'))) throw error;
    }
  }
}
