// helpers first: it loads tfjs-core before src/engine/tf.ts (see linear_probe.test.ts).
import { useCpuBackend } from '../helpers.js';
import { beforeAll, describe, expect, it } from 'vitest';
import type { LinearEvalConfig } from '../../src/config/schema.js';
import { argmaxRows, takeRows } from '../../src/eval/linear_probe.js';
import { averageProbabilities } from '../../src/eval/fitted_probe.js';
import { logoProbe, type FoldInfo } from '../../src/eval/logo.js';
import { confusionMatrix, meanStd } from '../../src/eval/metrics.js';
import type { FeatureSet, ProbeData } from '../../src/eval/protocols.js';
import { UserError } from '../../src/util/errors.js';
import { Rng } from '../../src/util/rng.js';

beforeAll(useCpuBackend);

const CFG: LinearEvalConfig = { epochs: 15, batch_size: 16, base_lr: 1, momentum: 0.9, weight_decay: 0, normalize: true, label_fraction: 1 };
const CLASSES = ['tumour', 'stroma'];

/**
 * Two classes around (-2, 0) and (2, 0), in groups of different sizes. The items of `flipped` groups
 * carry the other class's label: a probe that never saw such a group gets it almost all wrong.
 */
function grouped(sizes: readonly number[], flipped: readonly number[], seed: number): FeatureSet {
  const rng = new Rng(seed, 'grouped');
  const n = sizes.reduce((a, b) => a + b, 0);
  const x = new Float32Array(n * 2);
  const y = new Int32Array(n);
  const groups = new Int32Array(n);
  let i = 0;
  sizes.forEach((size, g) => {
    for (let j = 0; j < size; j++, i++) {
      const c = j % 2;
      x[2 * i] = (c ? 2 : -2) + rng.normal();
      x[2 * i + 1] = rng.normal();
      y[i] = flipped.includes(g) ? 1 - c : c;
      groups[i] = g;
    }
  });
  return { x, y, groups, groupNames: sizes.map((_, g) => `slide${g}`) };
}

const TRAIN = grouped([30, 40, 50], [0], 1);
// One unlabelled item in slide1: it must never be fitted on nor scored.
TRAIN.y[35] = -1;
const TEST = grouped([60], [], 2);
const DATA: ProbeData = { dim: 2, classNames: CLASSES, train: TRAIN, test: TEST };

describe('leave-one-group-out', () => {
  const folds: FoldInfo[] = [];
  const result = logoProbe(DATA, 1, { cfg: CFG, seed: 0 }, (f) => folds.push(f));

  it('fits every fold on the other groups only and scores it on its own group', () => {
    expect(folds.map((f) => f.group)).toEqual([0, 1, 2]);
    for (const f of folds) {
      for (const i of f.trainRows) expect(TRAIN.groups![i]).not.toBe(f.group);
      for (const i of f.heldOutRows) expect(TRAIN.groups![i]).toBe(f.group);
      // Every labelled item of the other groups is used at fraction 1; the unlabelled one never.
      const expected = [...TRAIN.y.keys()].filter((i) => TRAIN.groups![i] !== f.group && TRAIN.y[i]! >= 0);
      expect([...f.trainRows].sort((a, b) => a - b)).toEqual(expected);
      expect([...f.trainRows, ...f.heldOutRows]).not.toContain(35);
    }
    expect(result.folds!.map((f) => [f.group, f.train_samples, f.test_samples])).toEqual([
      ['slide0', 89, 30],
      ['slide1', 80, 39],
      ['slide2', 69, 50],
    ]);
    // slide0's labels are flipped: fitted without it, its fold is almost all wrong (had the fold seen
    // slide0, it could not be below chance).
    expect(result.folds![0]!.metrics.accuracy).toBeLessThan(0.2);
    expect(result.folds![0]!.metrics.per_class.map((c) => c.name)).toEqual(CLASSES);
  });

  it('scores the ensemble of the fold classifiers, the mean of their softmax probabilities, on test', () => {
    const probes = folds.map((f) => f.probe);
    // Manual: softmax of each probe's logits, averaged over the probes.
    const manual = new Float64Array(60 * 2);
    for (const p of probes) {
      const z = p.logits(TEST.x);
      for (let i = 0; i < 60; i++) {
        const m = Math.max(z[2 * i]!, z[2 * i + 1]!);
        const e0 = Math.exp(z[2 * i]! - m);
        const e1 = Math.exp(z[2 * i + 1]! - m);
        manual[2 * i]! += e0 / (e0 + e1) / probes.length;
        manual[2 * i + 1]! += e1 / (e0 + e1) / probes.length;
      }
    }
    const avg = averageProbabilities(probes, TEST.x, 2);
    avg.forEach((v, i) => expect(v).toBeCloseTo(manual[i]!, 12));
    expect(result.metrics.confusion_matrix).toEqual(confusionMatrix(TEST.y, argmaxRows(manual, 2), 2));
    expect(result.ensemble).toEqual({ members: 3, combine: 'mean of softmax probabilities' });
    expect(result.settings.test_samples).toBe(60);
    expect(result.settings.train_samples).toBe(119);
  });

  it('is not a majority vote: one confident fold outweighs two unsure ones', () => {
    // slide0 (flipped) is as large as the two others together: fold 0 fits clean data and is sure;
    // folds 1 and 2 fit 2:1 flipped data and lean to the flipped label at about 2/3 confidence.
    const train = grouped([40, 20, 20], [0], 3);
    const seen: FoldInfo[] = [];
    const r = logoProbe({ ...DATA, train }, 1, { cfg: CFG, seed: 0 }, (f) => seen.push(f));
    const votes = seen.map((f) => f.probe.predict(TEST.x));
    const majority = Int32Array.from({ length: 60 }, (_, i) => (votes.filter((v) => v[i] === 1).length >= 2 ? 1 : 0));
    expect(confusionMatrix(TEST.y, majority, 2)).not.toEqual(r.metrics.confusion_matrix);
    expect(r.metrics.accuracy).toBeGreaterThan(0.8);
    expect(confusionMatrix(TEST.y, majority, 2)[0]![0]).toBeLessThan(10);
  });

  it('summarises the folds by mean and std', () => {
    for (const key of ['accuracy', 'balanced_accuracy', 'macro_f1'] as const) {
      expect(result.fold_summary![key]).toEqual(meanStd(result.folds!.map((f) => f.metrics[key])));
    }
    expect(meanStd([1, 3])).toEqual({ mean: 2, std: 1 });
  });

  it('draws the label fraction per fold from the fold\'s training groups, stratified, at least one per class', () => {
    const fractionFolds: FoldInfo[] = [];
    const r = logoProbe(DATA, 0.1, { cfg: CFG, seed: 0 }, (f) => fractionFolds.push(f));
    for (const f of fractionFolds) {
      const perClass = [0, 1].map((c) => [...f.trainRows].filter((i) => TRAIN.y[i] === c).length);
      const available = [0, 1].map((c) => [...TRAIN.y.keys()].filter((i) => TRAIN.groups![i] !== f.group && TRAIN.y[i] === c).length);
      expect(perClass).toEqual(available.map((n) => Math.max(1, Math.round(0.1 * n))));
      for (const i of f.trainRows) expect(TRAIN.groups![i]).not.toBe(f.group);
    }
    const union = new Set(fractionFolds.flatMap((f) => [...f.trainRows]));
    expect(r.settings.train_samples).toBe(union.size);
    // The JSON records the counts per class: per fold, and over the folds.
    r.folds!.forEach((fold, k) => {
      const f = fractionFolds[k]!;
      const count = (rows: Iterable<number>, c: number) => [...rows].filter((i) => TRAIN.y[i] === c).length;
      const pool = [...TRAIN.y.keys()].filter((i) => TRAIN.groups![i] !== f.group && TRAIN.y[i]! >= 0);
      expect(fold.class_counts).toEqual({
        available: { tumour: count(pool, 0), stroma: count(pool, 1) },
        fitted: { tumour: count(f.trainRows, 0), stroma: count(f.trainRows, 1) },
      });
    });
    expect(r.class_counts!.fitted.tumour + r.class_counts!.fitted.stroma).toBe(union.size);
    expect(r.class_counts!.available).toEqual({ tumour: 60, stroma: 59 });
    expect(r.label_fraction).toBe(0.1);
  });

  it('fails clearly with fewer than two labelled groups', () => {
    const one: ProbeData = { ...DATA, train: { ...TRAIN, groups: new Int32Array(TRAIN.y.length) } };
    expect(() => logoProbe(one, 1, { cfg: CFG, seed: 0 })).toThrow(UserError);
    expect(() => logoProbe(one, 1, { cfg: CFG, seed: 0 })).toThrow(/at least 2 groups .* has 1 group/);
    const none: ProbeData = { ...DATA, train: { x: TRAIN.x, y: TRAIN.y } };
    expect(() => logoProbe(none, 1, { cfg: CFG, seed: 0 })).toThrow(/no groups/);
  });

  it('scores the held-out fold rows it was given', () => {
    const f = folds[2]!;
    const pred = f.probe.predict(takeRows(TRAIN.x, 2, f.heldOutRows));
    const y = f.heldOutRows.map((i) => TRAIN.y[i]!);
    expect(result.folds![2]!.metrics.confusion_matrix).toEqual(confusionMatrix(y, pred, 2));
  });
});
