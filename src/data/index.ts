/**
 * Entry points of the data layer: build the train/test splits a config asks for, and the per-epoch
 * batch order.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { DataConfig } from '../config/schema.js';
import { writeFileAtomic } from '../io/atomic.js';
import { UserError } from '../util/errors.js';
import { isDirectory } from '../util/fs.js';
import { Rng } from '../util/rng.js';
import { BadItems } from './bad_items.js';
import { readCifar10 } from './cifar10.js';
import { emptyDataset, type DataSplits, type ImageDataset, type NeighbourIndex } from './dataset.js';
import type { Decoder } from './decode_cache.js';
import { holdoutSplit, loadLabelledFolder } from './folder.js';
import { HAM10000_METADATA, loadHam10000 } from './ham10000.js';
import type { FileLoadContext } from './load_files.js';
import { loadPatches } from './patches.js';
import { makeSynthetic } from './synthetic.js';
import { StreamedLoads } from './streamed_load.js';
import { makeSyntheticSlides } from './synthetic_slides.js';

export type { DataSplits, ImageDataset, NeighbourIndex } from './dataset.js';
export type { Normalization } from './augment.js';

function atMost(n: number, limit: number | undefined): number {
  return limit === undefined ? n : Math.min(n, limit);
}

function describe(kind: string, train: ImageDataset, test: ImageDataset, limited: boolean): string {
  const limitNote = limited ? ', limited' : '';
  return `${kind} ${train.height}x${train.width} (${train.size} train / ${test.size} test${limitNote})`;
}

export interface LoadDataOptions {
  /**
   * The run's folder: a drawn or reused HAM10000 split is stored there as split.json, so the run
   * records exactly which images it trained and reported on.
   */
  runDir?: string;
  /** Receives progress and the bad-input report (data.on_bad_image: skip); default: silent. */
  log?: (line: string) => void;
  /** Replaces the sharp decoder (tests count decodes with it). */
  decoder?: Decoder;
  /** data.keep_images: auto's threshold in bytes (default 2 GiB; tests lower it). */
  keepOnDiskAbove?: number;
}

/** A configured folder that must exist: a missing one is named by its config key as well as its path. */
function existingFolder(key: string, path: string, what: string): string {
  if (!isDirectory(path)) {
    throw new UserError(`${key}: ${path}: ${existsSync(path) ? 'not a directory' : 'no such directory'} (expected ${what})`);
  }
  return path;
}

function requireRoot(cfg: DataConfig, what: string): string {
  if (cfg.root === undefined) throw new UserError(`data.root: required for data.kind '${cfg.kind}' (${what})`);
  return existingFolder('data.root', cfg.root, what);
}

/**
 * Loads the splits for `cfg`; data.limit caps train (and test, unless data.test_limit is set).
 * File-based kinds decode through the image cache (data.cache_dir) at data.image_size, keep the
 * pixels in memory or read them from the cache per use (data.keep_images), and apply
 * data.on_bad_image to missing and undecodable files once everything is listed and decoded.
 */
export async function loadDataSplits(cfg: DataConfig, seed: number, options: LoadDataOptions = {}): Promise<DataSplits> {
  return loadSplits(cfg, seed, options);
}

export interface StreamedDataSplits {
  /**
   * The splits as listed. Where file images are kept in memory, their datasets hand out every listed
   * item at once and their images arrive in order: wait on ImageDataset.whenLoaded before reading them.
   */
  listed: DataSplits;
  /**
   * Once every image has loaded or failed: `listed` itself when none failed; otherwise what
   * loadDataSplits gives (data.on_bad_image applied, bad items removed, from the decode cache the
   * streamed load filled). Rejects as loadDataSplits would.
   */
  settled: Promise<DataSplits>;
}

/**
 * loadDataSplits with the images streamed (src/data/streamed_load.ts): returns once the files are
 * listed, while decoding goes on in the background, so the caller can set up and start on the first
 * images. Only readers that wait (extractFeatures) may use `listed` before `settled`.
 */
export async function streamDataSplits(cfg: DataConfig, seed: number, options: LoadDataOptions = {}): Promise<StreamedDataSplits> {
  const stream = new StreamedLoads();
  const bad = new BadItems();
  const listed = await loadSplits(cfg, seed, options, { stream, bad });
  const settled = stream.settled().then(() => (bad.size === 0 ? listed : loadSplits(cfg, seed, options)));
  // Awaited by the caller later; until then a failed load is not an unhandled rejection.
  settled.catch(() => undefined);
  return { listed, settled };
}

async function loadSplits(cfg: DataConfig, seed: number, options: LoadDataOptions, streamed?: { stream: StreamedLoads; bad: BadItems }): Promise<DataSplits> {
  const testLimit = cfg.test_limit ?? cfg.limit;
  const limitKeys = { train: 'data.limit', test: cfg.test_limit === undefined ? 'data.limit' : 'data.test_limit' };
  const limited = cfg.limit !== undefined || cfg.test_limit !== undefined;
  const log = options.log ?? (() => {});
  if (cfg.kind === 'synthetic') {
    const { size, train_size, test_size } = cfg.synthetic;
    // Items are keyed by index, so generating only the first N equals generating all and cutting.
    const train = makeSynthetic({ size, count: atMost(train_size, cfg.limit), seed, split: 'train' });
    const test = makeSynthetic({ size, count: atMost(test_size, testLimit), seed, split: 'test' });
    return { train, test, description: describe('synthetic', train, test, limited) };
  }
  if (cfg.kind === 'cifar10') {
    const root = requireRoot(cfg, 'the cifar-10-batches-bin folder');
    const { train, test } = await readCifar10(root, { trainLimit: cfg.limit, testLimit });
    return { train, test, description: describe('cifar10', train, test, limited) };
  }
  if (cfg.kind === 'synthetic_slides') return syntheticSlides(cfg, seed, log);

  const bad = streamed?.bad ?? new BadItems();
  const ctx: FileLoadContext = {
    size: cfg.image_size,
    cacheDir: resolve(cfg.cache_dir),
    keepImages: cfg.keep_images,
    diskAbove: options.keepOnDiskAbove,
    bad,
    log,
    decoder: options.decoder,
    stream: streamed?.stream,
  };
  const finish = (splits: DataSplits): DataSplits => {
    // A streamed load's bad items show later; streamDataSplits then loads again without streaming.
    if (!streamed) bad.enforce(cfg.on_bad_image, `data (${cfg.kind})`, log);
    if (splits.train.size === 0) throw new UserError(`data.root ${cfg.root}: no usable training images (data.kind '${cfg.kind}')`);
    return splits;
  };
  if (cfg.kind === 'ham10000') {
    const root = requireRoot(cfg, `the folder with ${HAM10000_METADATA} and the images`);
    const ham = await loadHam10000(root, cfg, { seed, onBadImage: cfg.on_bad_image, limits: { train: cfg.limit, test: testLimit }, limitKeys }, ctx);
    const splits = finish({
      train: ham.train,
      // A split without validation fraction has no val side (model selection then falls back to train).
      val: ham.val.size > 0 ? ham.val : undefined,
      test: ham.test,
      description: `ham10000 ${cfg.image_size}x${cfg.image_size} (${ham.train.size} train / ${ham.val.size} val / ${ham.test.size} test${limited ? ', limited' : ''}; split ${ham.splitSource})`,
    });
    if (options.runDir) await writeFileAtomic(join(options.runDir, 'split.json'), `${JSON.stringify(ham.split, null, 1)}\n`);
    return splits;
  }
  if (cfg.kind === 'folder') {
    const root = requireRoot(cfg, 'the labelled folder <root>/<group>/<class>/* or <root>/<class>/*');
    const l = await loadLabelledFolder(root, cfg.labelled, seed, ctx, { train: cfg.limit, test: testLimit }, limitKeys);
    const held = l.holdout === undefined ? '' : `, held-out group ${l.holdout}`;
    return finish({
      train: l.probeTrain,
      probeTrain: l.probeTrain,
      test: l.test,
      description: `folder ${cfg.image_size}x${cfg.image_size} (${l.probeTrain.size} train / ${l.test.size} test, ${l.layout}${held}${limited ? ', limited' : ''})`,
    });
  }
  const root = requireRoot(cfg, 'the patch folder');
  // Both folders are checked before anything is decoded.
  const labelledRoot = cfg.labelled.root === undefined ? undefined : existingFolder('data.labelled.root', cfg.labelled.root, 'the labelled folder for the probes, <root>/<group>/<class>/* or <root>/<class>/*');
  // The pool's neighbour lists need to know which patches loaded, so it never streams.
  const p = await loadPatches(root, cfg.patches, { ...ctx, stream: undefined }, cfg.limit);
  logIsolated(p.neighbours, log);
  const labelled = labelledRoot === undefined ? undefined : await loadLabelledFolder(labelledRoot, cfg.labelled, seed, ctx, { test: testLimit }, limitKeys);
  const test = labelled?.test ?? emptyDataset(cfg.image_size, cfg.image_size);
  return finish({
    train: p.train,
    test,
    probeTrain: labelled?.probeTrain,
    neighbours: p.neighbours,
    description:
      `patches ${cfg.image_size}x${cfg.image_size} (${p.train.size} train on ${p.slides} slides, ${p.layout} layout, ` +
      `${p.neighbours.isolated} without neighbour / ${labelled ? `${labelled.probeTrain.size} probe-train / ` : ''}${test.size} test${limited ? ', limited' : ''})`,
  });
}

function logIsolated(neighbours: NeighbourIndex, log: (line: string) => void): void {
  if (neighbours.isolated > 0) {
    log(`neighbours: ${neighbours.isolated} patch(es) have no neighbour; their neighbour view is a second view of themselves`);
  }
}

function syntheticSlides(cfg: DataConfig, seed: number, log: (line: string) => void): DataSplits {
  const slides = makeSyntheticSlides(cfg.slides, seed, cfg.limit);
  logIsolated(slides.neighbours, log);
  const { labels, groups, groupNames } = slides.labelled;
  const split = holdoutSplit(labels, groups, groupNames, cfg.labelled, seed);
  const testLimit = cfg.test_limit ?? cfg.limit;
  const probeTrain = slides.labelled.select(split.train);
  const test = slides.labelled.select(split.test.subarray(0, testLimit ?? split.test.length));
  const side = cfg.slides.patch_size;
  return {
    train: slides.train,
    test,
    probeTrain,
    neighbours: slides.neighbours,
    description:
      `synthetic_slides ${side}x${side} (${slides.train.size} train on ${cfg.slides.train_slides} slides, ` +
      `${slides.neighbours.isolated} without neighbour / ${probeTrain.size} probe-train / ${test.size} test on ${split.holdout}, ` +
      `${slides.classNames.length} classes)`,
  };
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
