/**
 * Run directories written by hand (metrics.jsonl, config.yaml, run.json, evals/<id>/record.json) in the
 * formats simtrip train and eval write, for the report tests: no training needed, and every number known.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigSchema, type Config } from '../../src/config/schema.js';
import type { EvalReport } from '../../src/eval/evaluate.js';
import { evalRecords, recordDir, RECORD_FILE, type EvalRecord } from '../../src/eval/records.js';
import { classificationMetrics } from '../../src/eval/metrics.js';
import type { EvalResult, LinearResult } from '../../src/eval/protocols.js';

export const CLASSES = ['tumour', 'stroma', 'lymph'];

export interface FakeRunOptions {
  name: string;
  method?: string;
  arch?: string;
  steps?: number;
  stepsPerEpoch?: number;
  /** Adds SimTriplet's terms and a mixed16 loss scale to the train records. */
  simtriplet?: boolean;
  /** Final kNN monitor accuracy (the log holds a rising curve ending there). */
  knn?: number;
  /** The eval records' linear results: label fraction -> predictions that score a known balanced accuracy. */
  eval?: { protocol: 'split' | 'logo'; fractions: readonly number[]; knn?: boolean } | false;
}

/** True labels of the fake test set: 10 of each class. */
export const TRUE = Int32Array.from({ length: 30 }, (_, i) => Math.floor(i / 10));

/** Predictions that get the first `correct` items of each class right and the others wrong (next class). */
export function predictions(correct: number): Int32Array {
  return TRUE.map((t, i) => (i % 10 < correct ? t : (t + 1) % 3));
}

function linearResult(protocol: 'split' | 'logo', fraction: number): LinearResult {
  // 1 % -> 4 of 10 right per class, 10 % -> 6, 100 % -> 9 (balanced accuracy 0.4, 0.6, 0.9).
  const correct = fraction < 0.05 ? 4 : fraction < 0.5 ? 6 : 9;
  const metrics = classificationMetrics(TRUE, predictions(correct), CLASSES);
  const settings = {
    optimizer: 'sgd' as const, momentum: 0.9, lr: 0.1, base_lr: 0.1, epochs: 20, batch_size: 256, weight_decay: 0,
    schedule: 'cosine' as const, normalize: true, label_fraction: fraction, train_samples: Math.round(90 * fraction), test_samples: 30,
  };
  const perClass = (n: number) => Object.fromEntries(CLASSES.map((c) => [c, n]));
  const class_counts = { available: perClass(30), fitted: perClass(Math.max(1, Math.round(30 * fraction))) };
  const result: LinearResult = { classifier: 'linear', protocol, label_fraction: fraction, settings, class_counts, metrics };
  if (protocol === 'logo') {
    const fold = (group: string, c: number) => ({ group, train_samples: 60, test_samples: 30, metrics: classificationMetrics(TRUE, predictions(c), CLASSES) });
    result.folds = [fold('slideA', correct - 1), fold('slideB', correct + 1)];
    const m = (a: number, b: number) => ({ mean: (a + b) / 2, std: Math.abs(a - b) / 2 });
    const [fa, fb] = result.folds.map((f) => f.metrics);
    result.fold_summary = {
      accuracy: m(fa!.accuracy, fb!.accuracy),
      balanced_accuracy: m(fa!.balanced_accuracy, fb!.balanced_accuracy),
      macro_f1: m(fa!.macro_f1, fb!.macro_f1),
    };
    result.ensemble = { members: 2, combine: 'mean of softmax probabilities' };
  } else {
    result.selection = {
      metric: 'balanced_accuracy',
      val_samples: 15,
      candidates: [{ base_lr: 0.1, lr: 0.1, best_epoch: 17, val: { accuracy: 0.8, balanced_accuracy: 0.8, macro_f1: 0.79 } }],
      chosen: { base_lr: 0.1, lr: 0.1, epoch: 17 },
      val: { accuracy: 0.8, balanced_accuracy: 0.8, macro_f1: 0.79 },
    };
  }
  return result;
}

export function fakeEvalReport(opts: { protocol: 'split' | 'logo'; fractions: readonly number[]; knn?: boolean }, source?: EvalReport['encoder_source']): EvalReport {
  const results: EvalResult[] = opts.fractions.map((f) => linearResult(opts.protocol, f));
  if (opts.knn !== false) {
    results.push({ classifier: 'knn', protocol: 'split', settings: { k: 20, t: 0.1, train_samples: 90, test_samples: 30 }, metrics: classificationMetrics(TRUE, predictions(7), CLASSES) });
  }
  return {
    encoder: 'checkpoint fake/checkpoints/last.safetensors (epoch 4)',
    encoder_source: source ?? { kind: 'random-init', model: ConfigSchema.parse({}).model },
    config_name: 'fake',
    engine: 'cpu',
    data: 'fake slides (90 train / 30 test)',
    protocol: opts.protocol,
    feature_dim: 8,
    train_samples: 90,
    val_samples: opts.protocol === 'split' ? 15 : undefined,
    test_samples: 30,
    class_names: CLASSES,
    groups: opts.protocol === 'logo' ? ['slideA', 'slideB'] : undefined,
    features: { dtype: 'float16', cache: 'fake/features' },
    input: { image_size: 32, normalization: 'imagenet' },
    results,
    created: '2026-01-01T00:00:00.000Z',
  };
}

/** Writes a run dir under `parent`; returns its path. */
export function writeFakeRun(parent: string, opts: FakeRunOptions): string {
  const dir = join(parent, opts.name);
  mkdirSync(dir, { recursive: true });
  const steps = opts.steps ?? 40;
  const perEpoch = opts.stepsPerEpoch ?? 10;
  const lines: string[] = [];
  const epochWindows: Record<string, unknown>[] = [];
  for (let step = 2; step <= steps; step += 2) {
    const epoch = Math.ceil(step / perEpoch);
    const loss = -0.9 * (step / steps);
    const record: Record<string, unknown> = { kind: 'train', step, epoch, loss, lr: 0.05 * (1 - step / (steps + 1)), collapse_std: 0.02, img_per_s: 100 + (step % 3) };
    if (opts.simtriplet) Object.assign(record, { loss_inter: loss / 2 - 0.1, loss_intra: loss / 2 + 0.1, loss_scale: step < steps / 2 ? 65536 : 32768 });
    lines.push(JSON.stringify(record));
    epochWindows.push(record);
    if (step % perEpoch === 0) {
      // The epoch's mean, as the trainer logs it (here: the mean of its windows).
      const mean = (k: string) => epochWindows.reduce((a, r) => a + (r[k] as number), 0) / epochWindows.length;
      const terms = opts.simtriplet ? { loss_inter: mean('loss_inter'), loss_intra: mean('loss_intra') } : {};
      lines.push(JSON.stringify({ kind: 'epoch', step, epoch, loss: mean('loss'), collapse_std: 0.02, ...terms }));
      epochWindows.length = 0;
    }
    if (step % perEpoch === 0 && opts.knn !== undefined) {
      lines.push(JSON.stringify({ kind: 'knn', step, epoch, accuracy: opts.knn * (step / steps), k: 20 }));
    }
  }
  writeFileSync(join(dir, 'metrics.jsonl'), `${lines.join('\n')}\n`);
  writeFileSync(
    join(dir, 'config.yaml'),
    [
      `name: ${opts.name}`,
      'seed: 3',
      'engine: { backend: cpu, precision: ' + (opts.simtriplet ? 'mixed16' : 'fp32') + ' }',
      'data: { kind: synthetic_slides, image_size: 32 }',
      `model: { arch: ${opts.arch ?? 'resnet18'}, stem: cifar, width: 8 }`,
      `method: { name: ${opts.method ?? 'simsiam'}, proj_dim: 64 }`,
      `train: { epochs: ${Math.ceil(steps / perEpoch)}, batch_size: 32, base_lr: 0.05, weight_decay: 0.0005 }`,
      '',
    ].join('\n'),
  );
  writeFileSync(join(dir, 'run.json'), JSON.stringify({ name: opts.name, engine: 'cpu', data: 'synthetic_slides 32x32 (320 train / 30 test)', steps_per_epoch: perEpoch }));
  if (opts.eval !== false) {
    const e = opts.eval ?? { protocol: 'logo' as const, fractions: [0.01, 0.1, 1] };
    if (opts.legacyEval) writeFileSync(join(dir, 'eval.json'), JSON.stringify(fakeEvalReport(e), null, 2));
    else writeFakeRecords(dir, fakeEvalReport(e, fakeCheckpoint(dir, steps, perEpoch)));
  }
  return dir;
}

/** The config the fake run's config.yaml stands for, as far as record keys go. */
export const FAKE_CONFIG: Config = ConfigSchema.parse({ seed: 3, data: { kind: 'synthetic_slides', image_size: 32 } });

/** Its last checkpoint, as eval names the encoder. */
export function fakeCheckpoint(dir: string, step: number, perEpoch: number): EvalReport['encoder_source'] {
  return { kind: 'checkpoint', path: join(dir, 'checkpoints', 'last.safetensors'), step, epoch: Math.ceil(step / perEpoch), trained_on: FAKE_CONFIG.data };
}

/** The records `simtrip eval` keeps for `report` in `dir`, written in its layout (evals/<id>/record.json). */
export function writeFakeRecords(dir: string, report: EvalReport, cfg: Config = FAKE_CONFIG): EvalRecord[] {
  const records = evalRecords(report, cfg, dir);
  for (const r of records) {
    mkdirSync(recordDir(dir, r.id), { recursive: true });
    writeFileSync(join(recordDir(dir, r.id), RECORD_FILE), JSON.stringify(r, null, 2));
  }
  return records;
}
