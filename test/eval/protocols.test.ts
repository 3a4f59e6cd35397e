// helpers first: it loads tfjs-core before src/engine/tf.ts (see linear_probe.test.ts).
import { useCpuBackend } from '../helpers.js';
import { beforeAll, describe, expect, it } from 'vitest';
import type { LinearEvalConfig } from '../../src/config/schema.js';
import { knnProbe, labelledPart, lrGrid, resolveProtocol, splitProbe, type FeatureSet, type ProbeData } from '../../src/eval/protocols.js';
import { UserError } from '../../src/util/errors.js';
import { Rng } from '../../src/util/rng.js';

beforeAll(useCpuBackend);

const CFG: LinearEvalConfig = { epochs: 20, batch_size: 32, base_lr: 1, momentum: 0.9, weight_decay: 0, normalize: true, label_fraction: 1 };

/**
 * Two classes, signal s = -1 / +1. Train and test: x1 = s + n, x2 = n with a large shared noise n, so
 * only x1 - x2 separates them; a well-trained probe (high lr) finds that direction, a barely-trained
 * one (tiny lr) stays near the class-mean difference, mostly x1. Validation ("shifted"): x1 = s and x2
 * independent noise, where x1 alone is right and x1 - x2 is noisy. Validation and test therefore
 * disagree on which lr is better.
 */
function correlated(n: number, seed: number, shifted: boolean): FeatureSet {
  const rng = new Rng(seed, 'correlated');
  const x = new Float32Array(n * 2);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    y[i] = i % 2;
    const s = y[i] ? 1 : -1;
    const noise = 3 * rng.normal();
    x[2 * i] = shifted ? s : s + noise;
    x[2 * i + 1] = noise;
  }
  return { x, y };
}

const DATA: ProbeData = { dim: 2, classNames: ['a', 'b'], train: correlated(200, 1, false), val: correlated(100, 2, true), test: correlated(100, 3, false) };
const TINY = 1e-4;
const LARGE = 3;

describe('split protocol with a validation split', () => {
  const result = splitProbe(DATA, 1, { cfg: { ...CFG, lr_grid: [TINY, LARGE] }, seed: 0 });

  it('chooses the lr and epoch by validation balanced accuracy, not by test', () => {
    const sel = result.selection!;
    expect(sel.metric).toBe('balanced_accuracy');
    expect(sel.val_samples).toBe(100);
    expect(sel.candidates.map((c) => c.base_lr)).toEqual([TINY, LARGE]);
    const [tiny, large] = sel.candidates;
    // On validation the tiny lr wins ...
    expect(tiny!.val.balanced_accuracy).toBeGreaterThan(large!.val.balanced_accuracy + 0.1);
    expect(sel.chosen.base_lr).toBe(TINY);
    expect(sel.chosen.epoch).toBe(tiny!.best_epoch);
    expect(sel.val).toEqual(tiny!.val);
    expect(result.settings.base_lr).toBe(TINY);
    expect(result.settings.lr).toBeCloseTo((TINY * 32) / 256, 12);
    // ... while on test the large lr is far better: a selection that peeked at test would report ~1.
    const onTest = splitProbe({ ...DATA, val: undefined }, 1, { cfg: { ...CFG, base_lr: LARGE }, seed: 0 });
    expect(onTest.metrics.balanced_accuracy).toBeGreaterThan(0.95);
    expect(result.metrics.balanced_accuracy).toBeLessThan(0.85);
  });

  it('reports the test metrics of the chosen snapshot with every field and class name', () => {
    expect(result.protocol).toBe('split');
    expect(result.classifier).toBe('linear');
    expect(result.metrics.per_class.map((c) => c.name)).toEqual(['a', 'b']);
    expect(result.metrics.confusion_matrix.flat().reduce((a, b) => a + b, 0)).toBe(100);
    expect(result.settings.test_samples).toBe(100);
    expect(result.settings.train_samples).toBe(200);
  });

  it('ties between epochs go to the later epoch', () => {
    // Constant validation: every snapshot of the run predicts it perfectly, so all epochs tie.
    const easy: FeatureSet = { x: Float32Array.from({ length: 40 }, (_, i) => (i % 4 < 2 ? -5 : 5)), y: Int32Array.from({ length: 20 }, (_, i) => (i % 2 < 1 ? 0 : 1)) };
    const r = splitProbe({ dim: 2, classNames: ['a', 'b'], train: easy, val: easy, test: easy }, 1, { cfg: { ...CFG, epochs: 4, lr_grid: [1] }, seed: 0 });
    expect(r.selection!.val.balanced_accuracy).toBe(1);
    expect(r.selection!.chosen.epoch).toBe(4);
  });
});

describe('split protocol without validation', () => {
  it('fits the configured probe and records no selection', () => {
    const r = splitProbe({ ...DATA, val: undefined }, 1, { cfg: CFG, seed: 0 });
    expect(r.selection).toBeUndefined();
    expect(r.settings.base_lr).toBe(1);
  });

  it('stratifies a label fraction per class, at least one of each, and records the counts per class', () => {
    // 3 classes of 120, 20 and 3 labelled items: 1 % would round the small ones to nothing.
    const sizes = [120, 20, 3];
    const y = Int32Array.from(sizes.flatMap((n, c) => Array.from({ length: n }, () => c)));
    const x = Float32Array.from({ length: y.length * 2 }, (_, i) => y[i >> 1]! + (i % 2) * 0.1);
    const data: ProbeData = { dim: 2, classNames: ['nv', 'mel', 'vasc'], train: { x, y }, test: { x, y } };
    const one = splitProbe(data, 0.01, { cfg: { ...CFG, epochs: 2 }, seed: 0 });
    expect(one.class_counts).toEqual({ available: { nv: 120, mel: 20, vasc: 3 }, fitted: { nv: 1, mel: 1, vasc: 1 } });
    const ten = splitProbe(data, 0.1, { cfg: { ...CFG, epochs: 2 }, seed: 0 });
    expect(ten.class_counts!.fitted).toEqual({ nv: 12, mel: 2, vasc: 1 });
    expect(ten.settings.train_samples).toBe(15);
    expect(knnProbe(data, 3, 0.1).class_counts).toEqual({ available: { nv: 120, mel: 20, vasc: 3 }, fitted: { nv: 120, mel: 20, vasc: 3 } });
  });

  it('draws the label fraction from the labelled items only, at least one per class', () => {
    const train = correlated(200, 1, false);
    train.y = train.y.map((v, i) => (i % 10 === 0 ? -1 : v)); // 20 unlabelled items, 10 per class
    const progressLabels: string[] = [];
    const progress = (label: string) => (progressLabels.push(label), { onEpoch: () => {}, finish: () => {} });
    const r = splitProbe({ ...DATA, train, val: undefined }, 0.1, { cfg: CFG, seed: 0, progress });
    expect(r.settings.train_samples).toBe(18); // round(0.1 x 90) of each class
    expect(r.label_fraction).toBe(0.1);
    expect(progressLabels).toEqual(['linear 0.1']);
    const one = splitProbe({ ...DATA, train, val: undefined }, 0.001, { cfg: CFG, seed: 0 });
    expect(one.settings.train_samples).toBe(2);
  });
});

describe('resolveProtocol', () => {
  const y = Int32Array.from([0, 1, 0, 1]);
  it('auto is logo with two or more labelled groups, split otherwise', () => {
    expect(resolveProtocol('auto', { y, groups: Int32Array.from([0, 0, 1, 1]) })).toBe('logo');
    expect(resolveProtocol('auto', { y, groups: Int32Array.from([0, 0, 0, 0]) })).toBe('split');
    expect(resolveProtocol('auto', { y })).toBe('split');
    // A group whose items are all unlabelled does not count.
    expect(resolveProtocol('auto', { y: Int32Array.from([0, 1, -1, -1]), groups: Int32Array.from([0, 0, 1, 1]) })).toBe('split');
    expect(resolveProtocol('split', { y, groups: Int32Array.from([0, 0, 1, 1]) })).toBe('split');
  });

  it('explicit logo without two groups is a user error that says what to do', () => {
    const one = () => resolveProtocol('logo', { y, groups: Int32Array.from([3, 3, 3, 3]) });
    expect(one).toThrow(UserError);
    expect(one).toThrow(/eval\.protocol: 'logo' needs labelled data in at least 2 groups .* has 1 group;/);
    expect(() => resolveProtocol('logo', { y })).toThrow(/has no groups/);
  });
});

describe('helpers', () => {
  it('lrGrid defaults to a decade either side of base_lr', () => {
    expect(lrGrid(CFG)).toEqual([0.1, 1, 10]);
    expect(lrGrid({ ...CFG, lr_grid: [0.5] })).toEqual([0.5]);
  });

  it('labelledPart drops unlabelled rows with their features and groups', () => {
    const set: FeatureSet = { x: Float32Array.from([1, 2, 3, 4, 5, 6]), y: Int32Array.from([0, -1, 1]), groups: Int32Array.from([7, 8, 9]) };
    const part = labelledPart(set, 2);
    expect([...part.x]).toEqual([1, 2, 5, 6]);
    expect([...part.y]).toEqual([0, 1]);
    expect([...part.groups!]).toEqual([7, 9]);
  });

  it('knnProbe fits on the labelled training items and scores the labelled test items', () => {
    const train: FeatureSet = { x: Float32Array.from([1, 0, 0, 1, 5, 5]), y: Int32Array.from([0, 1, -1]) };
    const test: FeatureSet = { x: Float32Array.from([2, 0.1, 0.1, 3, 9, 9]), y: Int32Array.from([0, 1, -1]) };
    const r = knnProbe({ dim: 2, classNames: ['a', 'b'], train, test }, 5, 0.1);
    expect(r.settings).toEqual({ k: 5, t: 0.1, train_samples: 2, test_samples: 2 });
    expect(r.metrics.accuracy).toBe(1);
  });
});
