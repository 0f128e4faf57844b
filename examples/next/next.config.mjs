// The Next.js example: tokens streamed from a route handler with @ssekit/web.
//   pnpm build && cd examples/next && NEXT_TELEMETRY_DISABLED=1 npx next build && npx next start -p 3005
import { fileURLToPath } from 'node:url';

// Nothing in this app reaches outside the machine: no next/font/google, no remote images, and no
// anonymous usage report either (the same as running with NEXT_TELEMETRY_DISABLED=1). The config is
// read before Next sets telemetry up, for `next build` and `next start` alike.
process.env.NEXT_TELEMETRY_DISABLED ??= '1';

// The pnpm workspace: @ssekit/web and @ssekit/core are symlinks to ../../packages/*, which Turbopack
// and output tracing only follow inside their root.
const workspace = fileURLToPath(new URL('../..', import.meta.url));

/** @type {import('next').NextConfig} */
const config = {
  reactStrictMode: true,
  poweredByHeader: false,
  turbopack: { root: workspace },
  outputFileTracingRoot: workspace,
  images: { unoptimized: true },
};

export default config;
