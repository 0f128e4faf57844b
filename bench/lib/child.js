/** A forked child process spoken to with request/answer messages over IPC. */
import { fork } from 'node:child_process';

export class Child {
  /**
   * @param {string} file module to fork
   * @param {string[]} args argv for it
   * @param {{ execArgv?: string[], env?: Record<string, string>, name: string, readyMs?: number }} options
   */
  constructor(file, args, options) {
    this.name = options.name;
    this.calls = new Map();
    this.nextId = 1;
    this.exited = false;
    this.proc = fork(file, args, {
      execArgv: options.execArgv ?? [],
      env: { ...process.env, ...options.env },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.ready = new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${this.name}: not ready after ${options.readyMs ?? 30_000} ms`)),
        options.readyMs ?? 30_000,
      );
      this.proc.on('message', (message) => {
        if (message.ready) {
          clearTimeout(timer);
          resolve(message);
          return;
        }
        const call = this.calls.get(message.id);
        if (call === undefined) return;
        this.calls.delete(message.id);
        if (message.ok) call.resolve(message);
        else call.reject(new Error(`${this.name}: ${message.error}`));
      });
      this.proc.on('exit', (code, signal) => {
        this.exited = true;
        clearTimeout(timer);
        const error = new Error(`${this.name} exited (${signal ?? code})`);
        reject(error);
        for (const call of this.calls.values()) call.reject(error);
        this.calls.clear();
      });
    });
    // Callers await `ready`; an early exit must not also surface as an unhandled rejection.
    this.ready.catch(() => {});
  }

  /** Sends `{ cmd, ...args }` and resolves to the answer; rejects if the child dies or times out. */
  call(cmd, args = {}, timeoutMs = 600_000) {
    if (this.exited) return Promise.reject(new Error(`${this.name} is not running`));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.calls.delete(id);
        reject(new Error(`${this.name}: ${cmd} got no answer in ${timeoutMs} ms`));
      }, timeoutMs);
      this.calls.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.proc.send({ id, cmd, ...args });
    });
  }

  /** Asks the child to exit, then kills it if it does not. */
  async stop(graceMs = 5000) {
    if (this.exited) return;
    const exited = new Promise((resolve) => this.proc.once('exit', resolve));
    this.call('exit', {}, graceMs).catch(() => {});
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  }
}
