/**
 * The trainer with each method (SimTriplet on neighbour data, supervised fine-tuning) and with
 * mixed16 loss scaling: what reaches metrics.jsonl and the checkpoints, the data checks, and an exact
 * resume across skipped steps.
 */
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ConfigSchema, type Config } from '../../src/config/schema.js';
import { ArrayImageDataset, type DataSplits, type NeighbourIndex } from '../../src/data/dataset.js';
import type { EngineInfo } from '../../src/engine/engine.js';
import { tf } from '../../src/engine/tf.js';
import { loadEncoder } from '../../src/eval/evaluate.js';
import { readSafetensors } from '../../src/io/safetensors.js';
import { writeSyntheticSlides } from '../../src/data/synthetic_slides.js';
import { buildSslModel } from '../../src/model/build.js';
import { readCheckpoint } from '../../src/train/checkpoint.js';
import { batchViews } from '../../src/method/views.js';
import { train, type TrainOptions } from '../../src/train/trainer.js';
import { UserError } from '../../src/util/errors.js';
import { useCpuBackend } from '../helpers.js';
import { timingless } from './helpers.js';

const engine: EngineInfo = { requested: 'cpu', engine: 'cpu', tfBackend: 'cpu', skipped: [], detail: 'test' };

type Overrides = { [K in keyof Config]?: Record<string, unknown> };

/** 8 px images on a width-4 ResNet-18, batch 4: a few cheap steps. */
function config(o: Overrides = {}): Config {
  return ConfigSchema.parse({
    name: 'tiny',
    seed: 3,
    engine: { backend: 'cpu', ...o.engine },
    data: {
      kind: 'synthetic_slides',
      image_size: 8,
      // One 4x4 slide (13 patches after gaps) to train on, two labelled slides for the kNN monitor.
      slides: { train_slides: 1, eval_slides: 2, grid: 4, patch_size: 8, classes: 2 },
      synthetic: { train_size: 8, test_size: 8, size: 8 },
      ...o.data,
    },
    model: { arch: 'resnet18', stem: 'cifar', width: 4 },
    method: { name: 'simtriplet', proj_layers: 2, proj_dim: 16, pred_hidden: 4, ...o.method },
    train: { epochs: 1, batch_size: 4, base_lr: 0.05, checkpoint_every: 1, knn_every: 1, log_every: 1, ...o.train },
    eval: { batch_size: 16, knn: { k: 3 } },
  });
}

function options(cfg: Config, dir: string, extra: Partial<TrainOptions> = {}): TrainOptions {
  const devNull = { write: () => true, isTTY: false } as unknown as NodeJS.WriteStream;
  return { config: cfg, runDir: dir, resume: false, engine, log: () => undefined, progressStream: devNull, ...extra };
}

const runDir = (): Promise<string> => mkdtemp(join(tmpdir(), 'simtrip-methods-'));

async function metricsOf(dir: string): Promise<Array<Record<string, number | string>>> {
  const text = await readFile(join(dir, 'metrics.jsonl'), 'utf8');
  return text.trim().split('\n').map((l) => JSON.parse(l));
}

async function tensorsOf(path: string): Promise<Map<string, Float32Array>> {
  const file = await readSafetensors(path);
  return new Map(file.names().map((n) => [n, file.getFloat32(n)]));
}

beforeAll(useCpuBackend);

describe('batchViews', () => {
  /** Train items 0..3 and one extra neighbour-only image (index 4), as the released layout has. */
  const images = new ArrayImageDataset(new Uint8Array(5 * 2 * 2 * 3), 2, 2, new Int32Array(5).fill(-1), []);
  const train = new ArrayImageDataset(images.pixels.subarray(0, 4 * 12), 2, 2, new Int32Array(4).fill(-1), []);
  const calls: Array<[number, number, number]> = [];
  const neighbours: NeighbourIndex = {
    count: () => 1,
    isolated: 0,
    images,
    sample: (i, seed, epoch) => {
      calls.push([i, seed, epoch]);
      return i === 2 ? 2 : i === 3 ? 4 : i + 1;
    },
  };
  const data: DataSplits = { train, test: train, neighbours, description: 'fake' };

  it('SimTriplet: anchor, the sampled neighbour (from neighbours.images), anchor', () => {
    const m = buildSslModel(config().model, config().method, 1);
    const batch = Int32Array.from([3, 0, 2]);
    const { source, items } = batchViews(m.method, data, batch, 7, 5);
    expect(source).toBe(images);
    expect(items.map((v) => Array.from(v))).toEqual([
      [3, 0, 2],
      [4, 1, 2],
      [3, 0, 2],
    ]);
    expect(calls).toEqual([
      [3, 7, 5],
      [0, 7, 5],
      [2, 7, 5],
    ]);
    m.store.dispose();
  });

  it('SimSiam: the batch itself for both views, from the train split', () => {
    const cfg = config({ method: { name: 'simsiam' } });
    const m = buildSslModel(cfg.model, cfg.method, 1);
    const { source, items } = batchViews(m.method, data, Int32Array.from([1, 2]), 7, 5);
    expect(source).toBe(train);
    expect(items.map((v) => Array.from(v))).toEqual([
      [1, 2],
      [1, 2],
    ]);
    m.store.dispose();
  });
});

describe('train: simtriplet on synthetic slides', () => {
  let dir: string;
  const counts: number[] = [];
  const lines: string[] = [];
  beforeAll(async () => {
    dir = await runDir();
    await train(options(config(), dir, { log: (l) => lines.push(l), onStep: () => counts.push(tf.memory().numTensors) }));
  });

  it('logs the inter- and intra-sample terms with the loss, the kNN monitor on the labelled slides, checkpoints', async () => {
    const metrics = await metricsOf(dir);
    const steps = metrics.filter((m) => m.kind === 'train');
    expect(steps.map((m) => m.step)).toEqual([1, 2, 3]);
    for (const m of steps) {
      const loss = m.loss as number;
      expect(Math.abs(loss)).toBeLessThanOrEqual(2);
      expect(loss).toBeCloseTo((m.loss_inter as number) + (m.loss_intra as number), 5);
      expect(Math.abs(m.loss_inter as number)).toBeLessThanOrEqual(1);
      expect(m.collapse_std).toBeGreaterThan(0);
      expect(m).not.toHaveProperty('loss_scale');
    }
    const knn = metrics.filter((m) => m.kind === 'knn');
    expect(knn).toHaveLength(1);
    expect(knn[0]!.accuracy).toBeGreaterThanOrEqual(0);
    expect(knn[0]!.accuracy).toBeLessThanOrEqual(1);
    const ckpt = await readCheckpoint(join(dir, 'checkpoints', 'epoch-0001.safetensors'));
    expect(ckpt.state.config.method.name).toBe('simtriplet');
    expect(ckpt.state.loss_scaling).toBeUndefined();
    expect(lines.some((l) => /synthetic_slides .*13 train.* without neighbour/.test(l))).toBe(true);
  });

  it('keeps the number of live tensors flat from step to step', () => {
    expect(counts).toHaveLength(3);
    expect(new Set(counts.slice(1)).size).toBe(1);
  });

  it('refuses data without neighbours, naming the data kind and the kinds that have them', async () => {
    const cfg = config({ data: { kind: 'synthetic' } });
    const err = await train(options(cfg, await runDir())).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UserError);
    expect((err as Error).message).toMatch(/simtriplet.*data\.kind 'synthetic'.*'patches' or 'synthetic_slides'/);
  });
});

describe('train: augmentation on worker threads (data.workers)', () => {
  it('trains bit for bit as in-process augmentation does, prefetching the next batch', async () => {
    const [inProcess, pooled] = [await runDir(), await runDir()];
    await train(options(config(), inProcess));
    await train(options(config({ data: { workers: 2 } }), pooled));
    const losses = async (dir: string) => (await metricsOf(dir)).filter((m) => m.kind === 'train').map((m) => m.loss);
    expect(await losses(pooled)).toEqual(await losses(inProcess));
    const [a, b] = [await tensorsOf(join(inProcess, 'checkpoints', 'last.safetensors')), await tensorsOf(join(pooled, 'checkpoints', 'last.safetensors'))];
    expect([...b.keys()]).toEqual([...a.keys()]);
    for (const [name, values] of a) expect(b.get(name), name).toEqual(values);
  }, 60_000);
});

describe('train: data.keep_images', () => {
  it('trains on patch files kept on disk exactly as on the same patches in memory', async () => {
    const dir = await runDir();
    const slides = config().data.slides;
    const written = await writeSyntheticSlides(join(dir, 'data'), slides, 3);
    const lines: string[] = [];
    const run = async (keep: string) => {
      const out = await runDir();
      const data = { kind: 'patches', root: written.patchesDir, labelled: { root: written.labelledDir }, cache_dir: join(dir, `cache-${keep}`), keep_images: keep };
      await train(options(config({ data }), out, { log: (l) => lines.push(l) }));
      return out;
    };
    const memory = await run('memory');
    expect(lines.some((l) => l.includes('kept on disk'))).toBe(false);
    const disk = await run('disk');
    expect(lines.some((l) => /patches .*kept on disk/.test(l))).toBe(true);
    const runOf = async (out: string) => (await metricsOf(out)).filter((m) => m.kind === 'train' || m.kind === 'knn').map((m) => [m.kind, m.loss ?? m.accuracy]);
    const a = await runOf(memory);
    expect(a.filter(([kind]) => kind === 'train')).toHaveLength(3);
    expect(await runOf(disk)).toEqual(a);
    const [wa, wb] = [await tensorsOf(join(memory, 'checkpoints', 'last.safetensors')), await tensorsOf(join(disk, 'checkpoints', 'last.safetensors'))];
    for (const [name, values] of wa) expect(wb.get(name), name).toEqual(values);
  }, 60_000);
});

describe('train: supervised (the BiT arm)', () => {
  const supervised = (train: Record<string, unknown> = {}): Config =>
    config({
      data: { kind: 'synthetic' },
      method: { name: 'supervised' },
      train: { base_lr: 0.003, lr_batch_ref: 512, schedule: 'steps', weight_decay: 0, ...train },
    });
  let dir: string;
  const counts: number[] = [];
  beforeAll(async () => {
    dir = await runDir();
    await train(options(supervised(), dir, { onStep: () => counts.push(tf.memory().numTensors) }));
  });

  it('starts at loss ln K (zero head), logs train accuracy and the BiT lr, no collapse monitor', async () => {
    const metrics = await metricsOf(dir);
    const steps = metrics.filter((m) => m.kind === 'train');
    expect(steps).toHaveLength(2);
    expect(steps[0]!.loss).toBeCloseTo(Math.log(10), 5);
    for (const m of steps) {
      expect(m.train_accuracy).toBeGreaterThanOrEqual(0);
      expect(m.train_accuracy).toBeLessThanOrEqual(1);
      expect(m).not.toHaveProperty('collapse_std');
    }
    // lr0 = 0.003 x batch 4 / 512, no warm-up. Of 2 steps, 30 % and 60 % round to step 1: x0.01 there.
    expect(steps[0]!.lr).toBeCloseTo((0.003 * 4) / 512, 12);
    expect(steps[1]!.lr).toBeCloseTo((0.003 * 4) / 512 / 100, 12);
    expect(metrics.some((m) => m.kind === 'knn')).toBe(true);
    expect(new Set(counts.slice(1)).size).toBe(1);
  });

  it('saves backbone and head.fc; eval loads the backbone from that checkpoint like any other', async () => {
    const path = join(dir, 'checkpoints', 'last.safetensors');
    const tensors = await tensorsOf(path);
    expect(tensors.get('head.fc.weight')?.length).toBe(10 * 32);
    expect(Array.from(tensors.get('head.fc.weight')!).some((v) => v !== 0)).toBe(true);
    const logged: string[] = [];
    const { model } = await loadEncoder(config(), path, (l) => logged.push(l));
    expect(logged).toEqual([]); // nothing missing
    const conv = model.store.get('backbone.conv1.weight');
    const ckptConv = tensors.get('backbone.conv1.weight')!;
    // Same values (the file is OIHW, the store HWIO): compare as sorted multisets.
    expect(Array.from(conv.variable.dataSync()).sort()).toEqual(Array.from(ckptConv).sort());
    model.store.dispose();
  });

  it('refuses unlabelled training data', async () => {
    const cfg = config({ method: { name: 'supervised' } }); // synthetic_slides: unlabelled patches
    const err = await train(options(cfg, await runDir())).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UserError);
    expect((err as Error).message).toMatch(/supervised.*data\.kind 'synthetic_slides' has no classes/);
  });
});

describe('train: mixed16 with a forced overflow', () => {
  // 2^17 is too large for this model's half-precision gradients (max |g| ~ 1.5 at scale 1, and 65504
  // is the largest half): the first steps are skipped, halving the scale each time, until the
  // gradients fit; later batches may overflow again. The resume below starts between such skips.
  const INIT = 2 ** 17;
  const mixed = (): Config => config({ engine: { precision: 'mixed16', loss_scale_init: INIT }, train: { epochs: 2 } });
  let full: string;
  let records: Array<Record<string, number | string>>;
  let log: string[];
  beforeAll(async () => {
    full = await runDir();
    log = [];
    await train(options(mixed(), full, { log: (l) => log.push(l) }));
    records = (await metricsOf(full)).filter((m) => m.kind === 'train');
  });

  it('counts the skipped steps in the epoch lines in words that agree with the number', () => {
    const counts = log.filter((l) => l.startsWith('epoch ')).map((l) => /\((\d+) skipped steps?\)/.exec(l));
    expect(counts).toHaveLength(2);
    for (const m of counts) expect(m![0]).toBe(m![1] === '1' ? '(1 skipped step)' : `(${m![1]} skipped steps)`);
  });

  it('skips overflowing steps and halves the scale, without calling it divergence', () => {
    expect(records).toHaveLength(6);
    let prevScale = INIT;
    let prevSkipped = 0;
    for (const m of records) {
      const skipped = m.skipped_steps as number;
      const scale = m.loss_scale as number;
      expect(Number.isFinite(m.loss as number)).toBe(true);
      if (skipped > prevSkipped) {
        expect(skipped).toBe(prevSkipped + 1);
        expect(scale).toBe(prevScale / 2);
      } else {
        expect(scale).toBe(prevScale); // no growth before 2000 clean steps
      }
      prevScale = scale;
      prevSkipped = skipped;
    }
    // The forced overflow happened, and the run then trained with a smaller scale.
    expect(records[0]!.skipped_steps).toBe(1);
    expect(records[0]!.loss_scale).toBe(INIT / 2);
    expect(prevSkipped).toBeLessThanOrEqual(4); // at least two steps were applied
  });

  it('saves the scaler in the checkpoint, and a run resumed after the skips ends exactly the same', async () => {
    const last = await readCheckpoint(join(full, 'checkpoints', 'last.safetensors'));
    const final = records.at(-1)!;
    // Clean steps since the last skip: the records after the one where the skip count last rose.
    const lastSkip = records.findIndex((m) => m.skipped_steps === final.skipped_steps);
    expect(last.state.loss_scaling).toEqual({
      scaler: { scale: final.loss_scale, goodSteps: records.length - 1 - lastSkip },
      skipped_steps: final.skipped_steps,
    });

    const dir = await runDir();
    const controller = new AbortController();
    const first = await train(options(mixed(), dir, { signal: controller.signal, onStep: (s) => s === 4 && controller.abort() }));
    expect(first.steps).toBe(4);
    await train(options(mixed(), dir, { resume: true }));
    const a = await tensorsOf(join(full, 'checkpoints', 'last.safetensors'));
    const b = await tensorsOf(join(dir, 'checkpoints', 'last.safetensors'));
    expect([...b.keys()].sort()).toEqual([...a.keys()].sort());
    for (const [name, values] of a) expect(b.get(name), name).toEqual(values);
    expect((await metricsOf(dir)).map(timingless)).toEqual((await metricsOf(full)).map(timingless));
    expect((await readCheckpoint(join(dir, 'checkpoints', 'last.safetensors'))).state.loss_scaling).toEqual(last.state.loss_scaling);
  });
});
