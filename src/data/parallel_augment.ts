/**
 * Augmentation on worker threads (data.workers > 0). At 224 px one core augments about 150 views/s
 * (bench/data_throughput.ts), far below what a GPU engine trains at, so the rows of a batch are cut
 * into slices and augmented by a pool of workers while the main thread stays free (for the engine, or
 * to prepare the next batch).
 *
 * Results are bit-identical to the in-process augmentViews: a view's random stream is keyed by
 * (seed, epoch, item, view), never by the row or the thread, and the workers run the same function
 * on copies of the same pixels. Each slice carries only the source images its rows need, so the
 * dataset is never duplicated per worker.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { AugmentConfig } from '../config/schema.js';
import { writeFileAtomic } from '../io/atomic.js';
import { augmentViews, type Normalization } from './augment.js';
import type { ImageDataset } from './dataset.js';

/** One slice of a batch, as posted to a worker. */
export interface AugmentJob {
  id: number;
  /** Item indices of the slice's rows, per view. */
  viewItems: Int32Array[];
  /** The distinct items of the slice and their pixels, in that order. */
  items: Int32Array;
  pixels: Uint8Array;
  height: number;
  width: number;
  outSize: number;
  cfg: AugmentConfig;
  norm: Normalization;
  key: { seed: number; epoch: number };
}

export type AugmentJobReply = { id: number; views: Float32Array[] } | { id: number; error: string };

interface Pending {
  job: AugmentJob;
  resolve: (views: Float32Array[]) => void;
  reject: (err: Error) => void;
}

/** A fixed set of augmentation workers; close() it when done (idle workers do not keep Node alive). */
export class AugmentPool {
  private readonly queue: Pending[] = [];
  private readonly busy = new Map<Worker, Pending>();
  private readonly idle: Worker[] = [];
  private failure: Error | undefined;
  private nextId = 0;

  private constructor(private readonly workers: Worker[]) {
    for (const w of workers) {
      w.unref();
      w.on('message', (reply: AugmentJobReply) => this.onReply(w, reply));
      w.on('error', (err) => this.fail(new Error(`augmentation worker failed: ${err.message}`)));
      w.on('exit', (code) => {
        if (code !== 0 || this.busy.has(w)) this.fail(new Error(`augmentation worker exited with code ${code}`));
      });
      this.idle.push(w);
    }
  }

  /** Starts `size` workers (size >= 1) from the worker script (default: see workerScript()). */
  static async create(size: number, options: { script?: URL } = {}): Promise<AugmentPool> {
    if (!Number.isInteger(size) || size < 1) throw new RangeError(`an augmentation pool needs at least one worker, got ${size}`);
    const script = options.script ?? (await workerScript());
    const workers = Array.from({ length: size }, () => new Worker(script));
    // Wait until every worker has loaded its script, so a broken script fails here, not mid-epoch.
    await Promise.all(
      workers.map(
        (w) =>
          new Promise<void>((resolve, reject) => {
            w.once('online', resolve);
            w.once('error', reject);
          }),
      ),
    ).catch(async (err: Error) => {
      await Promise.all(workers.map((w) => w.terminate()));
      throw new Error(`cannot start augmentation workers from ${fileURLToPath(script)}: ${err.message}`);
    });
    return new AugmentPool(workers);
  }

  get size(): number {
    return this.workers.length;
  }

  /** Same contract and results as augmentViews, computed on the workers. */
  async augmentViews(
    ds: ImageDataset,
    viewItems: ReadonlyArray<ArrayLike<number>>,
    outSize: number,
    cfg: AugmentConfig,
    norm: Normalization,
    key: { seed: number; epoch: number },
  ): Promise<Float32Array[]> {
    if (this.failure) throw this.failure;
    const batch = viewItems[0]?.length ?? 0;
    viewItems.forEach((items, v) => {
      if (items.length !== batch) throw new Error(`view ${v} lists ${items.length} items, view 0 lists ${batch}`);
    });
    const per = outSize * outSize * 3;
    const outputs = viewItems.map(() => new Float32Array(batch * per));
    // A few slices per worker, so a slow slice (one with more blurred views) does not hold the batch.
    const slices = Math.min(batch, 4 * this.workers.length);
    const jobs: Promise<void>[] = [];
    for (let s = 0; s < slices; s++) {
      const from = Math.floor((s * batch) / slices);
      const to = Math.floor(((s + 1) * batch) / slices);
      const job = this.sliceJob(ds, viewItems, from, to, outSize, cfg, norm, key);
      jobs.push(
        this.submit(job).then((views) => {
          views.forEach((view, v) => outputs[v]!.set(view, from * per));
        }),
      );
    }
    await Promise.all(jobs);
    return outputs;
  }

  /** Stops the workers; queued and running calls reject. */
  async close(): Promise<void> {
    this.fail(new Error('augmentation pool closed'));
    await Promise.all(this.workers.map((w) => w.terminate()));
  }

  private sliceJob(
    ds: ImageDataset,
    viewItems: ReadonlyArray<ArrayLike<number>>,
    from: number,
    to: number,
    outSize: number,
    cfg: AugmentConfig,
    norm: Normalization,
    key: { seed: number; epoch: number },
  ): AugmentJob {
    const rows = viewItems.map((items) => Int32Array.from({ length: to - from }, (_, i) => items[from + i]!));
    const items = Int32Array.from(new Set(rows.flatMap((r) => Array.from(r))));
    const stride = ds.height * ds.width * 3;
    const pixels = new Uint8Array(items.length * stride);
    items.forEach((item, k) => pixels.set(ds.image(item), k * stride));
    return { id: this.nextId++, viewItems: rows, items, pixels, height: ds.height, width: ds.width, outSize, cfg, norm, key };
  }

  private submit(job: AugmentJob): Promise<Float32Array[]> {
    return new Promise((resolve, reject) => {
      if (this.failure) return reject(this.failure);
      this.queue.push({ job, resolve, reject });
      this.dispatch();
    });
  }

  private dispatch(): void {
    while (this.idle.length > 0 && this.queue.length > 0) {
      const worker = this.idle.pop()!;
      const pending = this.queue.shift()!;
      this.busy.set(worker, pending);
      // Referenced while it works: Node must not exit while a batch is being augmented.
      worker.ref();
      const { job } = pending;
      worker.postMessage(job, [job.pixels.buffer as ArrayBuffer, ...job.viewItems.map((r) => r.buffer as ArrayBuffer)]);
    }
  }

  private onReply(worker: Worker, reply: AugmentJobReply): void {
    const pending = this.busy.get(worker);
    this.busy.delete(worker);
    worker.unref();
    this.idle.push(worker);
    if (pending && pending.job.id === reply.id) {
      if ('error' in reply) pending.reject(new Error(`augmentation worker: ${reply.error}`));
      else pending.resolve(reply.views);
    }
    this.dispatch();
  }

  private fail(err: Error): void {
    this.failure ??= err;
    for (const p of [...this.busy.values(), ...this.queue.splice(0)]) p.reject(this.failure);
    this.busy.clear();
  }
}

/**
 * augmentBatch's signature plus a pool: `views` views of each indexed item, on the pool's workers,
 * or in this thread when `pool` is undefined (data.workers: 0). Bit-identical either way.
 */
export async function augmentBatchParallel(
  ds: ImageDataset,
  indices: ArrayLike<number>,
  outSize: number,
  cfg: AugmentConfig,
  norm: Normalization,
  key: { seed: number; epoch: number },
  views: number,
  pool: AugmentPool | undefined,
): Promise<Float32Array[]> {
  return augmentViewsParallel(ds, Array.from({ length: views }, () => indices), outSize, cfg, norm, key, pool);
}

/** augmentViews (one item list per view, e.g. SimTriplet's anchor, neighbour, anchor) on a pool. */
export async function augmentViewsParallel(
  ds: ImageDataset,
  viewItems: ReadonlyArray<ArrayLike<number>>,
  outSize: number,
  cfg: AugmentConfig,
  norm: Normalization,
  key: { seed: number; epoch: number },
  pool: AugmentPool | undefined,
): Promise<Float32Array[]> {
  if (!pool) return augmentViews(ds, viewItems, outSize, cfg, norm, key);
  return pool.augmentViews(ds, viewItems, outSize, cfg, norm, key);
}

/** A pool of `workers` threads, or undefined for 0 (augment in-process): data.workers as given. */
export async function createAugmentPool(workers: number): Promise<AugmentPool | undefined> {
  return workers > 0 ? AugmentPool.create(workers) : undefined;
}

const WORKER_FILE = 'augment_worker.js';
let sourceWorker: Promise<URL> | undefined;

/**
 * The worker script. In dist/ it is the bundle beside the CLI (dist/augment_worker.js; benchmarks sit
 * one folder below). Running from the TypeScript sources (tests, vite-node) there is no such file, so
 * the worker is bundled from src/data/augment_worker.ts with esbuild (a dev dependency) into the
 * temp folder once per version of its code.
 */
export async function workerScript(): Promise<URL> {
  const here = import.meta.url;
  if (here.endsWith('.ts')) return (sourceWorker ??= bundleSourceWorker(fileURLToPath(here)));
  for (const candidate of [new URL(`./${WORKER_FILE}`, here), new URL(`../${WORKER_FILE}`, here)]) {
    if (existsSync(fileURLToPath(candidate))) return candidate;
  }
  throw new Error(`${WORKER_FILE} not found beside ${fileURLToPath(here)} (rebuild with npm run build)`);
}

async function bundleSourceWorker(thisFile: string): Promise<URL> {
  // A non-literal specifier keeps bundlers from pulling esbuild into dist/.
  const esbuild = 'esbuild';
  const { build } = (await import(esbuild)) as typeof import('esbuild');
  const result = await build({
    entryPoints: [join(dirname(thisFile), 'augment_worker.ts')],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    write: false,
    logLevel: 'silent',
  });
  const code = result.outputFiles[0]!.contents;
  const path = join(tmpdir(), `simtrip-augment-worker-${createHash('sha256').update(code).digest('hex').slice(0, 16)}.mjs`);
  // Atomic: test files running side by side may write the same file at once.
  if (!existsSync(path)) await writeFileAtomic(path, code);
  return pathToFileURL(path);
}
