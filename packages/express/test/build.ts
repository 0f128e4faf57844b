// Builds @ssekit/core and @ssekit/express (tsc -b) when dist is missing or older than the sources, so
// tests that load the built package (CommonJS consumers, the examples) stay cheap under `pnpm test`,
// which has built already.
import { execFileSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const root = fileURLToPath(new URL('../../../', import.meta.url));

function newest(dir: string): number {
  let time = 0;
  for (const name of readdirSync(dir)) time = Math.max(time, statSync(`${dir}/${name}`).mtimeMs);
  return time;
}

function stale(pkg: string): boolean {
  try {
    statSync(`${root}packages/${pkg}/dist/index.js`);
    // tsc leaves unchanged outputs alone, so compare the newest file on each side.
    return newest(`${root}packages/${pkg}/dist`) < newest(`${root}packages/${pkg}/src`);
  } catch {
    return true;
  }
}

/** Makes sure packages/core/dist and packages/express/dist are current. */
export function ensureBuilt(): void {
  if (!stale('core') && !stale('express')) return;
  try {
    execFileSync(process.execPath, [`${root}node_modules/typescript/bin/tsc`, '-b', 'packages/express'], {
      cwd: root,
      stdio: 'pipe',
    });
  } catch (error) {
    const { stdout, stderr } = error as { stdout?: Buffer; stderr?: Buffer };
    const out = `${stdout?.toString() ?? ''}${stderr?.toString() ?? ''}`;
    throw new Error(`tsc -b packages/express failed:\n${out}`);
  }
}
