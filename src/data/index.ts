/**
 * Entry points of the data layer: build the train/test splits a config asks for, and the per-epoch
 * batch order.
 */
import type { DataConfig } from '../config/schema.js';
import { UserError } from '../util/errors.js';
import { Rng } from '../util/rng.js';
import { readCifar10 } from './cifar10.js';
import type { DataSplits, ImageDataset } from './dataset.js';
import { makeSynthetic } from './synthetic.js';

export type { DataSplits, ImageDataset } from './dataset.js';
export type { Normalization } from './augment.js';

function atMost(n: number, limit: number | undefined): number {
  return limit === undefined ? n : Math.min(n, limit);
}

function describe(kind: string, train: ImageDataset, test: ImageDataset, limited: boolean): string {
  const limitNote = limited ? ', limited' : '';
  return `${kind} ${train.height}x${train.width} (${train.size} train / ${test.size} test${limitNote})`;
}

/** Loads the splits for `cfg`; data.limit caps train (and test, unless data.test_limit is set). */
export async function loadDataSplits(cfg: DataConfig, seed: number): Promise<DataSplits> {
  const testLimit = cfg.test_limit ?? cfg.limit;
  const limited = cfg.limit !== undefined || cfg.test_limit !== undefined;
  if (cfg.kind === 'synthetic') {
    const { size, train_size, test_size } = cfg.synthetic;
    // Items are keyed by index, so generating only the first N equals generating all and cutting.
    const train = makeSynthetic({ size, count: atMost(train_size, cfg.limit), seed, split: 'train' });
    const test = makeSynthetic({ size, count: atMost(test_size, testLimit), seed, split: 'test' });
    return { train, test, description: describe('synthetic', train, test, limited) };
  }
  if (cfg.root === undefined) {
    throw new UserError("data.root: required for data.kind 'cifar10' (the cifar-10-batches-bin folder)");
  }
  const { train, test } = await readCifar10(cfg.root, { trainLimit: cfg.limit, testLimit });
  return { train, test, description: describe('cifar10', train, test, limited) };
}

/**
 * The batches of one epoch: a permutation seeded by (seed, epoch), cut into full batches. The last
 * incomplete batch is dropped (drop_last=True in the SimSiam trainer): BatchNorm statistics of a tiny
 * remainder batch would be noisy.
 */
export function epochBatches(n: number, batchSize: number, seed: number, epoch: number): Int32Array[] {
  if (n < batchSize) {
    throw new UserError(
      `train.batch_size (${batchSize}) is larger than the training set (${n} items); incomplete batches ` +
        'are dropped, so lower train.batch_size or use more data (data.limit, data.synthetic.train_size)',
    );
  }
  const order = new Rng(seed, 'shuffle', epoch).permutation(n);
  const batches: Int32Array[] = [];
  for (let start = 0; start + batchSize <= n; start += batchSize) {
    batches.push(order.subarray(start, start + batchSize));
  }
  return batches;
}
