// helpers first: it loads tfjs-core before src/engine/tf.ts (see linear_probe.test.ts).
import { relativeError, useCpuBackend } from '../helpers.js';
import { beforeAll, describe, expect, it } from 'vitest';
import { ConfigSchema, type Config } from '../../src/config/schema.js';
import { ArrayImageDataset, type DataSplits } from '../../src/data/dataset.js';
import { tf } from '../../src/engine/tf.js';
import { evaluate, keptRows, type EvalOptions } from '../../src/eval/evaluate.js';
import { extractFeatures } from '../../src/eval/features.js';
import type { FeatureExtractor } from '../../src/eval/extractor.js';
import type { LinearResult } from '../../src/eval/protocols.js';
import { UserError } from '../../src/util/errors.js';
import { Rng } from '../../src/util/rng.js';
import { tempDir } from '../io/tmp.js';
import { writeFlatJpegFolder } from '../data/fixtures.js';
import { loadDataSplits } from '../../src/data/index.js';
import { join } from 'node:path';

beforeAll(useCpuBackend);

const SIZE = 8;
const CLASSES = ['red', 'blue'];

/** n images of SIZE x SIZE: class 0 reddish, class 1 bluish, with noise; groups cycle over `groups`. */
function images(n: number, seed: number, opts: { groups?: string[]; labelled?: boolean } = {}): ArrayImageDataset {
  const rng = new Rng(seed, 'images');
  const pixels = new Uint8Array(n * SIZE * SIZE * 3);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const c = i % 2;
    labels[i] = opts.labelled === false ? -1 : c;
    for (let p = 0; p < SIZE * SIZE; p++) {
      const o = (i * SIZE * SIZE + p) * 3;
      pixels[o] = (c ? 40 : 200) + rng.int(40);
      pixels[o + 1] = 100 + rng.int(40);
      pixels[o + 2] = (c ? 200 : 40) + rng.int(40);
    }
  }
  const groups = opts.groups && Int32Array.from({ length: n }, (_, i) => Math.floor(i / (n / opts.groups!.length)));
  return new ArrayImageDataset(pixels, SIZE, SIZE, labels, opts.labelled === false ? [] : CLASSES, { groups, groupNames: opts.groups });
}

function config(overrides: Record<string, unknown> = {}): Config {
  return ConfigSchema.parse({
    name: 'eval-test',
    seed: 2,
    data: { image_size: SIZE },
    model: { arch: 'resnet18', stem: 'cifar', width: 4 },
    eval: { batch_size: 16, knn: { k: 5 }, linear: { epochs: 4, batch_size: 8 }, ...overrides },
  });
}

async function run(data: DataSplits, cfg = config(), extra: Partial<EvalOptions> = {}) {
  const lines: string[] = [];
  const report = await evaluate({ config: cfg, linear: true, knn: true, engine: 'cpu', log: (l) => lines.push(l), data, ...extra });
  return { report, lines };
}

describe('evaluate', () => {
  it('auto picks leave-one-group-out on grouped labelled data: folds, ensemble, per-fraction results', async () => {
    const data: DataSplits = { train: images(36, 1, { groups: ['s1', 's2', 's3'] }), test: images(12, 2), description: 'grouped' };
    const before = tf.memory().numTensors;
    const { report, lines } = await run(data, config(), { labelFractions: [0.25, 1] });
    expect(tf.memory().numTensors).toBe(before);
    expect(report.protocol).toBe('logo');
    expect(report.groups).toEqual(['s1', 's2', 's3']);
    expect([report.train_samples, report.test_samples, report.val_samples]).toEqual([36, 12, undefined]);
    expect(report.results.map((r) => [r.classifier, r.protocol])).toEqual([['linear', 'logo'], ['linear', 'logo'], ['knn', 'split']]);
    const full = report.results[1] as LinearResult;
    expect(full.folds!.map((f) => [f.group, f.train_samples, f.test_samples])).toEqual([['s1', 24, 12], ['s2', 24, 12], ['s3', 24, 12]]);
    expect(full.ensemble!.members).toBe(3);
    expect(full.metrics.confusion_matrix.flat().reduce((a, b) => a + b, 0)).toBe(12);
    expect((report.results[0] as LinearResult).folds![0]!.train_samples).toBe(6); // 25 % of 12 per class
    expect(lines).toContain('protocol logo');
    expect(lines.some((l) => /linear probe \(100% labels, logo\).*3 folds: balanced accuracy/.test(l))).toBe(true);
  });

  it('split with a validation split chooses the probe on val and records the choice', async () => {
    const data: DataSplits = { train: images(24, 1), val: images(10, 3), test: images(12, 2), description: 'with val' };
    const { report } = await run(data);
    expect(report.protocol).toBe('split');
    expect(report.val_samples).toBe(10);
    const linear = report.results[0] as LinearResult;
    expect(linear.selection!.candidates.map((c) => c.base_lr)).toEqual([0.01, 0.1, 1]);
    expect(linear.selection!.val_samples).toBe(10);
    expect(linear.settings.base_lr).toBe(linear.selection!.chosen.base_lr);
  });

  it('fits on probeTrain when the training split is unlabelled', async () => {
    const data: DataSplits = { train: images(20, 1, { labelled: false }), probeTrain: images(16, 4), test: images(12, 2), description: 'patches' };
    const { report } = await run(data, config({ protocol: 'split' }));
    expect(report.train_samples).toBe(16);
    expect(report.results.map((r) => r.settings.train_samples)).toEqual([16, 16]);
  });

  it('with a feature cache, a second evaluation reads the features and gets the same results', async () => {
    const cacheDir = join(tempDir(), 'features');
    const data: DataSplits = { train: images(24, 1), test: images(12, 2), description: 'cached' };
    const first = await run(data, config(), { featureCache: cacheDir });
    expect(first.report.features).toEqual({ dtype: 'float16', cache: cacheDir });
    expect(first.lines.some((l) => l.includes('from the cache'))).toBe(false);
    const second = await run(data, config(), { featureCache: cacheDir });
    expect(second.lines).toContain(`features train: from the cache in ${cacheDir}`);
    expect(second.lines).toContain(`features test: from the cache in ${cacheDir}`);
    expect(second.report.results).toEqual(first.report.results);
    expect((await run(data)).report.features).toEqual({ dtype: 'float32' });
  });

  it.each([
    ['every image loads', []],
    ['some images are bad (on_bad_image: skip)', [2, 5, 6, 13]],
  ])('on a folder, streaming the images gives what evaluating the loaded splits gives: %s', async (_name, broken) => {
    const root = await writeFlatJpegFolder(20, broken);
    const cfg = ConfigSchema.parse({
      ...config(),
      data: { kind: 'folder', root, image_size: SIZE, cache_dir: join(root, '..', 'cache'), on_bad_image: 'skip', labelled: { test_fraction: 0.3 } },
    });
    const lines: string[] = [];
    const streamed = await evaluate({ config: cfg, linear: true, knn: true, engine: 'cpu', log: (l) => lines.push(l), views: true });
    const loaded = await run(await loadDataSplits(cfg.data, cfg.seed), cfg, { views: true });
    // The test split's features, row for row (the projector's rows), and the neighbour grid drawn from the probe data's.
    expect(relativeError(streamed.views!.projector.features, loaded.report.views!.projector.features)).toBeLessThan(1e-6);
    expect(streamed.views!.neighbours.chart.svg).toBe(loaded.report.views!.neighbours.chart.svg);
    expect(streamed.results).toEqual(loaded.report.results);
    expect([streamed.train_samples, streamed.test_samples]).toEqual([loaded.report.train_samples, loaded.report.test_samples]);
    expect(streamed.train_samples + streamed.test_samples).toBe(20 - broken.length);
    expect(streamed.data).toBe(loaded.report.data);
    expect(lines.some((l) => l.includes('without the images that failed to load'))).toBe(broken.length > 0);
    expect(lines.some((l) => /^features 20 images in .* end to end, loading and decoding included$/.test(l))).toBe(broken.length === 0);
  });

  it('on a folder with a bad image under on_bad_image: error, fails with the load\'s own error', async () => {
    const root = await writeFlatJpegFolder(12, [3]);
    const cfg = ConfigSchema.parse({ ...config(), data: { kind: 'folder', root, image_size: SIZE, cache_dir: join(root, '..', 'cache'), labelled: { test_fraction: 0.3 } } });
    const expected = await loadDataSplits(cfg.data, cfg.seed).catch((e: Error) => e);
    expect((expected as Error).message).toMatch(/img003\.jpg/);
    await expect(evaluate({ config: cfg, linear: false, knn: true, engine: 'cpu', log: () => {} })).rejects.toThrow((expected as Error).message);
  });

  it('extractFeatures stops before its next batch once its signal is aborted, with the abort\'s reason', async () => {
    let runs = 0;
    const extractor: FeatureExtractor = {
      runtime: 'tfjs',
      description: 'counting',
      featureDim: 2,
      imageSize: SIZE,
      run: async (_x, n) => (runs++, new Float32Array(n * 2)),
      dispose: () => {},
    };
    const stop = new AbortController();
    const ds = images(10, 1);
    const onProgress = (done: number) => {
      if (done >= 4) stop.abort(new Error('the load failed'));
    };
    await expect(extractFeatures(extractor, ds, { normalization: 'imagenet', batchSize: 4, onProgress, signal: stop.signal })).rejects.toThrow('the load failed');
    expect(runs).toBe(1);
  });

  it('keptRows takes the rows of the items that loaded, matched by source', () => {
    const listed = images(4, 1);
    const withSources = new ArrayImageDataset(listed.pixels, SIZE, SIZE, listed.labels, CLASSES, { sources: ['a', 'b', 'c', 'd'] });
    const settled = withSources.select([1, 3]);
    const x = Float32Array.from({ length: 8 }, (_, i) => i);
    expect(Array.from(keptRows(withSources, x, settled, 2))).toEqual([2, 3, 6, 7]);
    expect(keptRows(withSources, x, withSources, 2)).toBe(x);
  });

  it('rejects logo without groups, unlabelled data and mismatched classes before building the encoder', async () => {
    const flat: DataSplits = { train: images(12, 1), test: images(6, 2), description: 'flat' };
    await expect(run(flat, config({ protocol: 'logo' }))).rejects.toThrow(UserError);
    await expect(run(flat, config({ protocol: 'logo' }))).rejects.toThrow(/the training split has no groups/);
    const unlabelled: DataSplits = { train: images(12, 1, { labelled: false }), test: images(6, 2), description: 'unlabelled' };
    await expect(run(unlabelled)).rejects.toThrow(/the training split has no labels/);
    const other = images(6, 2);
    const renamed = new ArrayImageDataset(other.pixels, SIZE, SIZE, other.labels, ['blue', 'red']);
    await expect(run({ train: images(12, 1), test: renamed, description: 'x' })).rejects.toThrow(/the test split has classes \[blue, red\]/);
  });
});
