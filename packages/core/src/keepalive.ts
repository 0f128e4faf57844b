/**
 * ONE timer for every stream in the process. A per-connection `setInterval` costs a timer object and
 * a wake-up per client; here a single `unref`'d timer walks the members once per tick and each member
 * decides what is due (a heartbeat after it has been idle for its interval, a send timeout, its
 * maximum age). The tick adapts to the shortest period any member asked for, never slower than 1 s.
 */
import { unref } from './runtime.js';

/** A member of the scheduler that ticks itself. */
export interface Tickable {
  /** Called once per tick with the tick's time (`Date.now()`). */
  tick(now: number): void;
}

/** What the scheduler calls for a member each tick; one function serves every member of a kind. */
export type TickFn<T> = (member: T, now: number) => void;

const tickSelf: TickFn<Tickable> = (member, now) => member.tick(now);

// Map#forEach with the tick time as `this`: no entry arrays on a walk over 100,000 members.
function callTick(this: number, tick: TickFn<never>, member: object): void {
  (tick as TickFn<object>)(member, this);
}

/** Options for {@link KeepaliveScheduler}. */
export interface KeepaliveSchedulerOptions {
  /** The slowest tick in milliseconds. Default 1000. */
  maxResolution?: number;
  /** The fastest tick in milliseconds, whatever members ask for. Default 5. */
  minResolution?: number;
}

/**
 * Drives heartbeats and timeouts of many streams from one timer. Streams join it when they open (with
 * the resolution they need) and leave it when they close. Share one across servers, or `stop()` it in
 * tests; {@link defaultScheduler} is the one streams use unless told otherwise.
 */
export class KeepaliveScheduler {
  readonly #members = new Map<object, TickFn<never>>();
  readonly #max: number;
  readonly #min: number;
  #period = Number.POSITIVE_INFINITY;
  #timer: ReturnType<typeof setInterval> | undefined;
  #stopped = false;

  constructor(options: KeepaliveSchedulerOptions = {}) {
    this.#max = options.maxResolution ?? 1000;
    this.#min = options.minResolution ?? 5;
  }

  /** How many streams the scheduler holds. */
  get size(): number {
    return this.#members.size;
  }

  /** The current tick period in milliseconds (Infinity when idle). */
  get period(): number {
    return this.#period;
  }

  /**
   * Adds a member that needs a tick at least every `resolution` ms: `tick(member, now)` is called for
   * it (default: `member.tick(now)`). Adding to a stopped scheduler restarts it.
   */
  add(member: Tickable, resolution: number): void;
  add<T extends object>(member: T, resolution: number, tick: TickFn<T>): void;
  add(member: object, resolution: number, tick: TickFn<never> = tickSelf as TickFn<never>): void {
    this.#stopped = false;
    this.#members.set(member, tick);
    const period = Math.min(this.#max, Math.max(this.#min, Math.floor(resolution)));
    if (period < this.#period || this.#timer === undefined) {
      this.#period = Math.min(period, this.#period);
      this.#arm();
    }
  }

  /** Removes a member; the timer stops when none are left. */
  delete(member: object): void {
    if (!this.#members.delete(member) || this.#members.size > 0) return;
    this.#disarm();
  }

  /** True when `member` is held. */
  has(member: object): boolean {
    return this.#members.has(member);
  }

  /** Stops the timer and forgets every member (their streams stay open, without heartbeats). */
  stop(): void {
    this.#stopped = true;
    this.#members.clear();
    this.#disarm();
  }

  #arm(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = setInterval(this.#tick, this.#period);
    unref(this.#timer);
  }

  #disarm(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#period = Number.POSITIVE_INFINITY;
  }

  readonly #tick = (): void => {
    if (this.#stopped) return;
    const now = Date.now();
    // Members may leave during the walk (a heartbeat that finds the socket gone); Map iteration copes.
    this.#members.forEach(callTick, now);
  };
}

/** The process-wide scheduler every stream uses unless given another. */
export const defaultScheduler: KeepaliveScheduler = new KeepaliveScheduler();
