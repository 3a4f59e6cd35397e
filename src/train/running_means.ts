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

/** A metrics window: running sums, plus img/s over the wall time this process spent in it. */
export class Window {
  private sums: RunningSums;
  private images = 0;
  private t0 = performance.now();

  constructor(state?: RunningSumsState) {
    this.sums = new RunningSums(state);
  }

  add(values: Record<string, number | undefined>, images: number): void {
    this.sums.add(values);
    this.images += images;
  }

  get steps(): number {
    return this.sums.steps;
  }

  /** Means of the window, img/s over its wall time; then starts a new window. */
  take(): Record<string, number> {
    const out = { ...this.sums.means(), img_per_s: this.images / ((performance.now() - this.t0) / 1000) };
    this.sums = new RunningSums();
    this.images = 0;
    this.t0 = performance.now();
    return out;
  }

  state(): RunningSumsState {
    return this.sums.state();
  }
}
