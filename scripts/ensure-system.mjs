// Installs the system packages the test suite drives — Debian's Chromium (browser tests) and nginx
// (the multi-instance example) — when they are missing and we may (root with apt-get). Otherwise says
// which tests will skip; under CI=true a missing package is an error, since those tests must run.
import { execSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const needed = [
  { bin: '/usr/bin/chromium', pkg: 'chromium', for: 'browser tests' },
  { bin: '/usr/sbin/nginx', pkg: 'nginx-light', for: 'the nginx multi-instance test' },
];
const missing = needed.filter((n) => !existsSync(n.bin));
if (missing.length > 0) {
  const canInstall = process.getuid?.() === 0 && existsSync('/usr/bin/apt-get');
  if (canInstall) {
    const pkgs = missing.map((m) => m.pkg).join(' ');
    console.log(`[ssekit] installing ${pkgs} (apt-get) for the test suite…`);
    try {
      execSync(`apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ${pkgs}`, {
        stdio: 'inherit',
      });
    } catch {
      console.error(`[ssekit] could not install ${pkgs}`);
    }
  }
  for (const m of needed.filter((n) => !existsSync(n.bin))) {
    const line = `[ssekit] ${m.bin} is missing: ${m.for} will be skipped (install Debian package '${m.pkg}')`;
    if (process.env.CI === 'true') {
      console.error(`${line} — not allowed under CI=true`);
      process.exitCode = 1;
    } else {
      console.warn(line);
    }
  }
}
