/**
 * Starts an example server as a child process, exactly as a user would (`node <script>`, built
 * packages imported by name), and restarts it on the same port.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import net from 'node:net';

/** A running example server. */
export interface ExampleServer {
  port: number;
  url: string;
  process: ChildProcess;
  output: () => string;
  /** Sends `signal` and waits for the process to exit. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/**
 * Starts `node <script>` with `env` (PORT=0 unless given) and resolves once it printed
 * `listening on http://localhost:<port>`.
 */
export function startExample(
  script: string,
  env: Record<string, string> = {},
  timeout = 15_000,
): Promise<ExampleServer> {
  const child = spawn(process.execPath, [script], {
    env: { ...process.env, PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  return new Promise<ExampleServer>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${script} did not start in ${timeout} ms:\n${out}`));
    }, timeout);
    const onData = (chunk: Buffer): void => {
      out += chunk.toString();
      const match = /listening on http:\/\/localhost:(\d+)/.exec(out);
      if (match) {
        clearTimeout(timer);
        const port = Number(match[1]);
        resolve({
          port,
          url: `http://localhost:${port}`,
          process: child,
          output: () => out,
          stop(signal = 'SIGTERM') {
            if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
            return new Promise<void>((done) => {
              child.once('exit', () => done());
              child.kill(signal);
            });
          },
        });
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${script} exited with ${code} before listening:\n${out}`));
    });
  });
}

/**
 * Reads `url` as a stream until a first event arrives, sends SIGTERM to `child`, then reads to the
 * end: resolves with everything the stream carried and the process's exit code.
 */
export async function readThroughSigterm(
  url: string,
  child: ChildProcess,
): Promise<{ text: string; code: number | null }> {
  const res = await fetch(url, { headers: { accept: 'text/event-stream' } });
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  let text = '';
  while (!text.includes('data: ')) {
    const { value, done } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
  }
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.kill('SIGTERM');
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
  }
  return { text, code: await exited };
}

/**
 * A free port outside the kernel's ephemeral range (32768–60999 here): a server restarted on it finds
 * it still free, while other tests run beside it whose `listen(0)` would otherwise be handed the very
 * port the stopped server just released.
 */
export async function restartablePort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    const free = await new Promise<boolean>((resolve) => {
      const probe = net.createServer();
      probe.once('error', () => resolve(false));
      // The examples listen on every interface, as app.listen(port) does.
      probe.listen(port, () => probe.close(() => resolve(true)));
    });
    if (free) return port;
  }
  throw new Error('no free port between 20000 and 32000');
}
