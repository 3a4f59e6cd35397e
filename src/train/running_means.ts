/**
 * Means of the per-step numbers over a metrics window (train.log_every steps) and over an epoch. A
 * checkpoint written inside an epoch (Ctrl-C, SIGTERM) carries their sums, so the run resumed from it
 * logs the same window and epoch means as an uninterrupted run, to the last bit.
 */
import { z } from 'zod';

/** JSON has no NaN: a NaN sum is written as null and read back as NaN. */
const SumSchema = z.number().nullable().transform((v) => (v === null ? Number.NaN : v));

export const RunningSumsSchema = z.object({
  /** [name, sum] in the order the names were first seen, which is the order of the logged fields. */
  sums: z.array(z.tuple([z.string(), SumSchema])),
  steps: z.number().int().nonnegative(),
});
export type RunningSumsState = z.infer<typeof RunningSumsSchema>;

/** What a checkpoint inside an epoch carries: the open metrics window's and the epoch's sums. */
export const RunningStateSchema = z.object({ window: RunningSumsSchema, epoch: RunningSumsSchema });
export type RunningState = z.infer<typeof RunningStateSchema>;

export class RunningSums {
  private sums = new Map<string, number>();
  private n = 0;

  constructor(state?: RunningSumsState) {
    if (state) {
      this.sums = new Map(state.sums);
      this.n = state.steps;
    }
  }

  add(values: Record<string, number | undefined>): void {
    for (const [k, v] of Object.entries(values)) if (v !== undefined) this.sums.set(k, (this.sums.get(k) ?? 0) + v);
    this.n++;
  }

  get steps(): number {
    return this.n;
  }

  means(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [k, v] of this.sums) out[k] = v / this.n;
    return out;
  }

  state(): RunningSumsState {
    return { sums: [...this.sums], steps: this.n };
  }
}

/**
 * A metrics window: running sums, plus what this process measured in it (timings, which a resumed
 * run cannot carry over): img/s over its wall time, and the mean time a step waited for its batch.
 */
export class Window {
  private sums: RunningSums;
  private images = 0;
  private t0 = performance.now();
  private waitMs = 0;
  private timedSteps = 0;

  constructor(state?: RunningSumsState) {
    this.sums = new RunningSums(state);
  }

  /** One step's numbers, its batch size, and how long it waited for the batch's views (ms). */
  add(values: Record<string, number | undefined>, images: number, dataWaitMs?: number): void {
    this.sums.add(values);
    this.images += images;
    if (dataWaitMs !== undefined) {
      this.waitMs += dataWaitMs;
      this.timedSteps++;
    }
  }

  get steps(): number {
    return this.sums.steps;
  }

  /** Means of the window, img/s over its wall time and the mean data wait; then starts a new window. */
  take(): Record<string, number> {
    const out: Record<string, number> = { ...this.sums.means(), img_per_s: this.images / ((performance.now() - this.t0) / 1000) };
    if (this.timedSteps > 0) out.data_wait_ms = this.waitMs / this.timedSteps;
    this.sums = new RunningSums();
    this.images = 0;
    this.t0 = performance.now();
    this.waitMs = 0;
    this.timedSteps = 0;
    return out;
  }

  state(): RunningSumsState {
    return this.sums.state();
  }
}
