/**
 * Loads that hand out their datasets before the images arrive, so `eval` extracts the first batches
 * while later ones are still being read and decoded (and while the encoder and runtime are set up)
 * instead of decoding a whole folder first.
 *
 * A streamed dataset lists every file's item; its images arrive in file order, and `whenLoaded(end)`
 * says when the first `end` are there. Bad files only show once everything has settled: the caller
 * then gets a clean load instead (see streamDataSplits in index.ts), and the streamed one is not used.
 */
import { ArrayImageDataset, type DatasetExtras } from './dataset.js';

/** Which of `size` items have settled, for waiting until a prefix [0, end) has. */
export class SettledPrefix {
  private readonly settledItems: Uint8Array;
  private prefix = 0;
  private failure: Error | undefined;
  private waiters: Array<{ end: number; resolve: () => void; reject: (err: Error) => void }> = [];

  constructor(readonly size: number) {
    this.settledItems = new Uint8Array(size);
  }

  /** Items [0, end) have all settled. */
  get ready(): number {
    return this.prefix;
  }

  settle(index: number): void {
    this.settledItems[index] = 1;
    while (this.prefix < this.size && this.settledItems[this.prefix]) this.prefix++;
    this.release();
  }

  /** The load broke off: every wait, now and later, rejects with `err`. */
  fail(err: Error): void {
    this.failure ??= err;
    const waiting = this.waiters;
    this.waiters = [];
    for (const w of waiting) w.reject(this.failure);
  }

  whenSettled(end: number): Promise<void> {
    const target = Math.min(end, this.size);
    if (target <= this.prefix) return Promise.resolve();
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => this.waiters.push({ end: target, resolve, reject }));
  }

  private release(): void {
    if (this.waiters.length === 0) return;
    const still = [];
    for (const w of this.waiters) {
      if (w.end <= this.prefix) w.resolve();
      else still.push(w);
    }
    this.waiters = still;
  }
}

/** An in-memory dataset whose images are still arriving; read an item only after whenLoaded covers it. */
export class StreamingImageDataset extends ArrayImageDataset {
  constructor(
    pixels: Uint8Array,
    side: number,
    labels: Int32Array,
    classNames: readonly string[],
    extras: DatasetExtras,
    private readonly progress: SettledPrefix,
  ) {
    super(pixels, side, side, labels, classNames, extras);
  }

  whenLoaded(end: number): Promise<void> {
    return this.progress.whenSettled(end);
  }
}

/**
 * The streamed loads of one loadDataSplits, run one after another in the order they were started
 * (the order eval extracts them in), so the first split's images come first.
 */
export class StreamedLoads {
  private chain: Promise<unknown> = Promise.resolve();

  /** Queues `load` after the loads before it; `progress` fails with it, or with any load before it. */
  start(progress: SettledPrefix, load: () => Promise<unknown>): void {
    const run = this.chain.then(load);
    run.catch((err: Error) => progress.fail(err));
    this.chain = run;
  }

  /** Every load has finished; rejects with the first load's error. */
  async settled(): Promise<void> {
    await this.chain;
  }
}
