/**
 * A stress server in a child process, driven over IPC. The test process generates the client load
 * over loopback; the child serves it and answers requests for its own figures (open streams, heap).
 */
import { type ChildProcess, fork } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

interface Reply {
  id: number;
  ok: boolean;
  result?: unknown;
  error?: string;
}

/** A child server started from `stress/lib/<script>`. */
export class ServerProcess<Ready = unknown> {
  readonly #child: ChildProcess;
  readonly #pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>();
  readonly #exited: Promise<number | null>;
  #nextId = 0;
  #onReady: (() => void) | undefined;
  readonly #dir: string;
  readonly #logFile: string;
  /** What the child sent when it was ready (its ports and settings). */
  ready!: Ready;

  private constructor(script: string, args: readonly string[], execArgv: readonly string[]) {
    // The child's stdout and stderr go to a file, not a pipe: writes to a pipe are synchronous on
    // Linux, so a busy test process that reads the pipe late would stall the server it measures.
    this.#dir = mkdtempSync(join(tmpdir(), 'ssekit-stress-'));
    this.#logFile = join(this.#dir, 'server.log');
    const fd = openSync(this.#logFile, 'w');
    try {
      this.#child = fork(fileURLToPath(new URL(script, import.meta.url)), [...args], {
        execArgv: [...execArgv],
        stdio: ['ignore', fd, fd, 'ipc'],
        env: { ...process.env, NODE_ENV: 'production' },
      });
    } finally {
      closeSync(fd);
    }
    this.#child.on('message', (message: Reply | { ready: unknown }) => {
      if ('ready' in message) {
        this.ready = message.ready as Ready;
        this.#onReady?.();
        return;
      }
      const waiter = this.#pending.get(message.id);
      if (waiter === undefined) return;
      this.#pending.delete(message.id);
      if (message.ok) waiter.resolve(message.result);
      else waiter.reject(new Error(`child: ${message.error}`));
    });
    this.#exited = new Promise((resolve) => {
      this.#child.on('exit', (code) => {
        for (const waiter of this.#pending.values()) waiter.reject(new Error(`child exited (${code})\n${this.output}`));
        this.#pending.clear();
        resolve(code);
      });
    });
  }

  /** Starts `script` (relative to stress/lib) and waits for its `ready` message. */
  static async start<Ready>(
    script: string,
    args: readonly string[] = [],
    execArgv: readonly string[] = [],
  ): Promise<ServerProcess<Ready>> {
    const server = new ServerProcess<Ready>(script, args, execArgv);
    // The child announces itself once it listens (a request sent earlier could arrive before it
    // has a 'message' listener, and be lost).
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${script} did not start within 30 s\n${server.output}`)),
        30_000,
      );
      server.#onReady = () => {
        clearTimeout(timer);
        resolve();
      };
      server.#exited.then((code) => {
        clearTimeout(timer);
        reject(new Error(`${script} exited (${code}) before it was ready\n${server.output}`));
      });
    });
    return server;
  }

  /** Sends a command; resolves with the child's answer. */
  request<T = unknown>(cmd: string, arg?: unknown, timeout = 60_000): Promise<T> {
    const id = this.#nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`child did not answer ${cmd} within ${timeout} ms\n${this.output}`));
      }, timeout);
      this.#pending.set(id, {
        resolve: (value) => {
          clearTimeout(timer);
          resolve(value as T);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      });
      this.#child.send({ id, cmd, arg });
    });
  }

  /** The first 16 KB the child wrote to stdout and stderr (printed when something fails). */
  get output(): string {
    try {
      const length = Math.min(16 * 1024, statSync(this.#logFile).size);
      const buffer = Buffer.alloc(length);
      const fd = openSync(this.#logFile, 'r');
      try {
        readSync(fd, buffer, 0, length, 0);
      } finally {
        closeSync(fd);
      }
      return buffer.toString();
    } catch {
      return '';
    }
  }

  /** Lines the child wrote to stdout and stderr. */
  get outputLines(): number {
    try {
      return this.#countLines();
    } catch {
      return 0;
    }
  }

  /** Asks the child to close its servers and exit; kills it if it has not exited within 10 s. */
  async close(): Promise<void> {
    if (this.#child.exitCode === null && this.#child.signalCode === null) {
      await this.request('close', undefined, 10_000).catch(() => undefined);
      const timer = setTimeout(() => this.#child.kill('SIGKILL'), 10_000);
      await this.#exited;
      clearTimeout(timer);
    }
    rmSync(this.#dir, { recursive: true, force: true });
  }

  #countLines(): number {
    const fd = openSync(this.#logFile, 'r');
    const buffer = Buffer.alloc(64 * 1024);
    let lines = 0;
    try {
      for (let read = readSync(fd, buffer); read > 0; read = readSync(fd, buffer)) {
        for (let i = 0; i < read; i++) if (buffer[i] === 10) lines++;
      }
    } finally {
      closeSync(fd);
    }
    return lines;
  }
}
