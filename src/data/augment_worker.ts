/**
 * Worker-thread side of the augmentation pool (parallel_augment.ts): receives a slice of a batch (the
 * rows' item indices per view and the source pixels of those items), runs the very same augmentViews
 * as the main thread, and sends the float32 views back without copying (transfer).
 *
 * Bundled on its own (dist/augment_worker.js): a worker runs a file, not a function.
 */
import { parentPort } from 'node:worker_threads';
import { augmentViews } from './augment.js';
import type { ImageDataset } from './dataset.js';
import type { AugmentJob, AugmentJobReply } from './parallel_augment.js';

/**
 * The items of one job, addressed by their index in the caller's dataset: the augmentation streams
 * are keyed by that index, so it must reach augmentViews unchanged.
 */
class JobImages implements ImageDataset {
  readonly size: number;
  readonly classNames: readonly string[] = [];
  readonly labels = new Int32Array(0);
  private readonly at = new Map<number, number>();
  private readonly stride: number;

  constructor(
    private readonly job: AugmentJob,
  ) {
    this.stride = job.height * job.width * 3;
    job.items.forEach((item, k) => this.at.set(item, k));
    this.size = job.items.length;
  }

  get height(): number {
    return this.job.height;
  }

  get width(): number {
    return this.job.width;
  }

  image(index: number): Uint8Array {
    const k = this.at.get(index);
    if (k === undefined) throw new RangeError(`item ${index} was not sent with this job`);
    return this.job.pixels.subarray(k * this.stride, (k + 1) * this.stride);
  }
}

if (!parentPort) throw new Error('augment_worker.js runs as a worker thread (see src/data/parallel_augment.ts)');
const port = parentPort;

port.on('message', (job: AugmentJob) => {
  let reply: AugmentJobReply;
  let transfer: ArrayBuffer[] = [];
  try {
    const views = augmentViews(new JobImages(job), job.viewItems, job.outSize, job.cfg, job.norm, job.key);
    reply = { id: job.id, views };
    transfer = views.map((v) => v.buffer as ArrayBuffer);
  } catch (err) {
    reply = { id: job.id, error: (err as Error)?.stack ?? String(err) };
  }
  port.postMessage(reply, transfer);
});
