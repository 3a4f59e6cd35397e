/**
 * A run with a kept probe, for the predict and export --with-probe tests: a labelled image folder in
 * the SimTriplet layout (<root>/<group>/<class>/*.png, three groups, the last held out as test), a
 * checkpoint of a trained-looking encoder, and `simtrip eval --linear-probe` on it through the CLI.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { expect } from 'vitest';
import { ConfigSchema, type Config } from '../../src/config/schema.js';
import type { Normalization } from '../../src/data/augment.js';
import { parseCsv } from '../../src/data/csv.js';
import { readEvalRecords, type EvalRecord } from '../../src/eval/records.js';
import { buildEncoder } from '../../src/model/build.js';
import { saveCheckpoint } from '../../src/train/checkpoint.js';
import { Rng } from '../../src/util/rng.js';
import { runCli } from '../cli/run_cli.js';
import { tempDir } from '../io/tmp.js';
import { perturb, tinySgd } from '../model/tiny.js';

export const GROUPS = ['g1', 'g2', 'g3'];
export const CLASSES = ['blue', 'red'];
export const HOLDOUT = 'g3';

export interface ProbeRun {
  /** The labelled folder. */
  root: string;
  /** The run directory (checkpoints/last.safetensors). */
  dir: string;
  /** The eval config. */
  yaml: string;
  imageSize: number;
}

/** 20 x 16 PNGs (resized and cropped to the image size), reddish or bluish with enough noise that probes err. */
async function writeImages(root: string, perClass: number): Promise<void> {
  const rng = new Rng(11, 'probe-run-images');
  const [w, h] = [20, 16];
  for (const [g, group] of GROUPS.entries()) {
    for (const [c, cls] of CLASSES.entries()) {
      const dir = join(root, group, cls);
      mkdirSync(dir, { recursive: true });
      for (let i = 0; i < perClass; i++) {
        const px = Buffer.alloc(w * h * 3);
        const red = c === 1 ? 150 : 100;
        for (let p = 0; p < w * h; p++) {
          px[p * 3] = red + 10 * g + rng.int(90) - 45;
          px[p * 3 + 1] = 110 + rng.int(60);
          px[p * 3 + 2] = 250 - red + rng.int(90) - 45;
        }
        await sharp(px, { raw: { width: w, height: h, channels: 3 } }).png().toFile(join(dir, `img${String(i).padStart(2, '0')}.png`));
      }
    }
  }
}

/** A checkpoint of `model` (seeded random weights and running statistics) in run directory `dir`; returns its config. */
export async function writeCheckpoint(dir: string, model: Record<string, unknown>, data: Record<string, unknown>, normalization: Normalization, seed: number, step = 30): Promise<Config> {
  const cfg = ConfigSchema.parse({ model, data, method: { proj_dim: 16, proj_hidden: 16, proj_layers: 2, pred_hidden: 8 } });
  const enc = buildEncoder(cfg.model, seed);
  const sgd = tinySgd(enc.store);
  perturb(enc.store, sgd, seed);
  sgd.dispose();
  await saveCheckpoint(dir, { store: enc.store, state: { epoch: 3, step, config: cfg, normalization, engine: 'cpu' } });
  enc.store.dispose();
  return cfg;
}

export async function probeRun(options: { model?: Record<string, unknown>; imageSize?: number; normalization?: Normalization; perClass?: number } = {}): Promise<ProbeRun> {
  const model = options.model ?? { arch: 'resnet18', stem: 'cifar', width: 4 };
  const imageSize = options.imageSize ?? 16;
  const base = tempDir();
  const root = join(base, 'labelled');
  await writeImages(root, options.perClass ?? 6);
  const dir = join(base, 'run');
  const data = { kind: 'folder', root, image_size: imageSize, cache_dir: join(base, 'cache') };
  await writeCheckpoint(dir, model, data, options.normalization ?? 'imagenet', 13);
  const yaml = join(base, 'eval.yaml');
  const config = { name: 'probe-run', seed: 3, model, data, eval: { batch_size: 16, linear: { epochs: 8, batch_size: 8, base_lr: 1 } } };
  writeFileSync(yaml, JSON.stringify(config));
  return { root, dir, yaml, imageSize };
}

/** `simtrip eval --linear-probe` under `protocol`; returns the record it added or replaced. */
export async function evalProbe(run: ProbeRun, protocol: 'split' | 'logo', ...extra: string[]): Promise<EvalRecord> {
  const r = await runCli('eval', '--config', run.yaml, '--checkpoint', run.dir, '--linear-probe', '--set', `eval.protocol=${protocol}`, ...extra);
  expect(r.stderr).not.toMatch(/simtrip: /);
  expect(r.code).toBe(0);
  const { records } = await readEvalRecords(run.dir);
  const record = records.filter((x) => x.protocol === protocol).at(-1)!;
  expect(r.stderr).toContain(`probes   kept beside their records (${record.id})`);
  return record;
}

export interface ProbeRunWithProbes {
  run: ProbeRun;
  /** A split probe on float32 features. */
  split: EvalRecord;
  /** A logo ensemble on features through the feature cache, so rounded to float16 as eval cached them. */
  logo: EvalRecord;
}

export async function probeRunWithProbes(): Promise<ProbeRunWithProbes> {
  const run = await probeRun();
  const split = await evalProbe(run, 'split');
  const logo = await evalProbe(run, 'logo', '--cache-features');
  return { run, split, logo };
}

/** A predictions CSV as simtrip predict writes it. */
export interface Predictions {
  header: string[];
  rows: { file: string; predicted: string; p: number[] }[];
}

export function readPredictions(path: string): Predictions {
  const [header, ...rows] = parseCsv(readFileSync(path, 'utf8')).map((r) => r.fields);
  return { header: header!, rows: rows.map(([file, predicted, ...p]) => ({ file: file!, predicted: predicted!, p: p.map(Number) })) };
}
