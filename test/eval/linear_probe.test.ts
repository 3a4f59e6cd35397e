// helpers first: it loads tfjs-core (CommonJS) before src/engine/tf.ts pulls in the ESM gradient files,
// which otherwise create the engine from a second tfjs-core copy whose Tensor methods are unwired.
import { relativeError, useCpuBackend } from '../helpers.js';
import { beforeAll, describe, expect, it } from 'vitest';
import type { LinearEvalConfig } from '../../src/config/schema.js';
import { tf } from '../../src/engine/tf.js';
import {
  argmaxRows,
  cosineLr,
  featureStats,
  probeLr,
  runLinearProbe,
  runLinearProbeFractions,
  softmaxRows,
  trainLinearProbe,
  type EpochInfo,
  type LinearProbeInput,
} from '../../src/eval/linear_probe.js';
import { Rng } from '../../src/util/rng.js';

beforeAll(useCpuBackend);

const CFG: LinearEvalConfig = {
  epochs: 15,
  batch_size: 32,
  base_lr: 0.8,
  momentum: 0.9,
  weight_decay: 0,
  normalize: true,
  label_fraction: 1,
};

/**
 * perClass items of each class around well-separated Gaussian centres, in class-interleaved order.
 * Features get per-dimension offsets and scales so that standardisation has work to do.
 */
function gaussians(perClass: number, dim: number, numClasses: number, seed: number, centreSeed = 100): { x: Float32Array; y: Int32Array } {
  const c = new Rng(centreSeed, 'centres');
  const centres = Array.from({ length: numClasses }, () => Array.from({ length: dim }, () => 3 * c.normal()));
  const offset = Array.from({ length: dim }, (_, j) => 10 * (j - dim / 2));
  const scale = Array.from({ length: dim }, (_, j) => 0.5 + j);
  const rng = new Rng(seed, 'gaussians');
  const n = perClass * numClasses;
  const x = new Float32Array(n * dim);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const cls = i % numClasses;
    y[i] = cls;
    for (let j = 0; j < dim; j++) x[i * dim + j] = offset[j]! + scale[j]! * (centres[cls]![j]! + rng.normal());
  }
  return { x, y };
}

const NAMES = ['a', 'b', 'c'];
const DIM = 6;
const TRAIN = gaussians(80, DIM, 3, 1);
const TEST = gaussians(40, DIM, 3, 2);

function accuracy(pred: Int32Array, y: Int32Array): number {
  let ok = 0;
  pred.forEach((p, i) => (ok += p === y[i] ? 1 : 0));
  return ok / y.length;
}

function input(overrides: Partial<LinearProbeInput> = {}): LinearProbeInput {
  return { trainX: TRAIN.x, trainY: TRAIN.y, testX: TEST.x, testY: TEST.y, dim: DIM, classNames: NAMES, cfg: CFG, seed: 0, ...overrides };
}

/**
 * Full-batch gradient descent in float64, written from the protocol: softmax cross-entropy, PyTorch
 * SGD (v = m v + g + wd w; w -= lr v; bias not decayed), half-cosine lr per iteration.
 */
function referenceFullBatch(x: Float32Array, y: Int32Array, dim: number, k: number, cfg: LinearEvalConfig): { w: Float64Array; b: Float64Array } {
  const n = y.length;
  const w = new Float64Array(dim * k); // [dim x k]
  const b = new Float64Array(k);
  const vW = new Float64Array(dim * k);
  const vB = new Float64Array(k);
  const lr0 = (cfg.base_lr * cfg.batch_size) / 256;
  for (let t = 0; t < cfg.epochs; t++) {
    const lr = 0.5 * lr0 * (1 + Math.cos((Math.PI * t) / cfg.epochs));
    const gW = new Float64Array(dim * k);
    const gB = new Float64Array(k);
    for (let i = 0; i < n; i++) {
      const z = Array.from({ length: k }, (_, c) => {
        let s = b[c]!;
        for (let j = 0; j < dim; j++) s += x[i * dim + j]! * w[j * k + c]!;
        return s;
      });
      const m = Math.max(...z);
      const e = z.map((v) => Math.exp(v - m));
      const sum = e.reduce((a, v) => a + v, 0);
      for (let c = 0; c < k; c++) {
        const d = (e[c]! / sum - (y[i] === c ? 1 : 0)) / n;
        gB[c]! += d;
        for (let j = 0; j < dim; j++) gW[j * k + c]! += d * x[i * dim + j]!;
      }
    }
    for (let q = 0; q < w.length; q++) {
      vW[q] = cfg.momentum * vW[q]! + gW[q]! + cfg.weight_decay * w[q]!;
      w[q]! -= lr * vW[q]!;
    }
    for (let c = 0; c < k; c++) {
      vB[c] = cfg.momentum * vB[c]! + gB[c]!;
      b[c]! -= lr * vB[c]!;
    }
  }
  return { w, b };
}

describe('probe helpers', () => {
  it('probeLr scales by batch / 256 and cosineLr runs from lr0 to 0', () => {
    expect(probeLr({ base_lr: 0.1, batch_size: 512 })).toBeCloseTo(0.2, 12);
    expect(cosineLr(2, 0, 10)).toBeCloseTo(2, 12);
    expect(cosineLr(2, 5, 10)).toBeCloseTo(1, 12);
    expect(cosineLr(2, 10, 10)).toBeCloseTo(0, 12);
  });

  it('featureStats gives the mean and biased std, flooring a constant feature', () => {
    const { mean, std } = featureStats(Float32Array.from([1, 5, 3, 5, 8, 5]), 2);
    expect([...mean]).toEqual([4, 5]);
    // sqrt(((1-4)^2 + (3-4)^2 + (8-4)^2) / 3) = sqrt(26 / 3): divided by n, not n - 1.
    expect(std[0]!).toBeCloseTo(Math.sqrt(26 / 3), 5);
    expect(std[1]!).toBeCloseTo(1e-6, 12);
  });
});

describe('trainLinearProbe', () => {
  it('separates well-separated Gaussian classes', () => {
    const probe = trainLinearProbe(TRAIN.x, TRAIN.y, DIM, 3, CFG, 0);
    expect(probe.weights.length).toBe(DIM * 3);
    expect(probe.bias.length).toBe(3);
    expect(accuracy(probe.predict(TEST.x), TEST.y)).toBeGreaterThan(0.95);
  });

  it.each(['js', 'tfjs'] as const)('%s kernel follows a float64 full-batch SGD reference step by step', (kernel) => {
    const x = TRAIN.x.subarray(0, 30 * DIM);
    const y = TRAIN.y.subarray(0, 30);
    // batch_size >= n: one full-batch step per epoch, so the batch order plays no part.
    // Large lr and weight decay so that each term (momentum, decay, bias not decayed) visibly matters.
    const cfg: LinearEvalConfig = { ...CFG, epochs: 4, batch_size: 64, base_lr: 2, weight_decay: 0.2, normalize: true };
    const epochs: EpochInfo[] = [];
    const probe = trainLinearProbe(x, y, DIM, 3, cfg, 0, { kernel, onEpoch: (e) => epochs.push(e) });
    const { mean, std } = featureStats(x, DIM);
    const standardised = x.map((v, i) => (v - mean[i % DIM]!) / std[i % DIM]!);
    const ref = referenceFullBatch(standardised, y, DIM, 3, cfg);
    expect(relativeError(probe.weights, ref.w)).toBeLessThan(1e-4);
    expect(relativeError(probe.bias, ref.b)).toBeLessThan(1e-4);
    // First epoch: zero weights, uniform softmax, loss ln 3; lr reported is the epoch's (only) iteration.
    expect(epochs.map((e) => e.epoch)).toEqual([1, 2, 3, 4]);
    expect(epochs[0]!.loss).toBeCloseTo(Math.log(3), 5);
    expect(epochs[0]!.epochs).toBe(4);
    expect(epochs[3]!.lr).toBeCloseTo(cosineLr(probeLr(cfg), 3, 4), 12);
  });

  it("'js' and 'tfjs' kernels give the same weights for the same seed (mini-batches, normalize on)", () => {
    const cfg: LinearEvalConfig = { ...CFG, epochs: 5, weight_decay: 1e-3 };
    const js = trainLinearProbe(TRAIN.x, TRAIN.y, DIM, 3, cfg, 4, { kernel: 'js' });
    const tfjs = trainLinearProbe(TRAIN.x, TRAIN.y, DIM, 3, cfg, 4, { kernel: 'tfjs' });
    expect(relativeError(tfjs.weights, js.weights)).toBeLessThan(1e-4);
    expect(relativeError(tfjs.bias, js.bias)).toBeLessThan(1e-3);
    expect([...tfjs.predict(TEST.x)]).toEqual([...js.predict(TEST.x)]);
  });

  it('depends on the seed only through the batch order', () => {
    const cfg: LinearEvalConfig = { ...CFG, epochs: 3 };
    const a = trainLinearProbe(TRAIN.x, TRAIN.y, DIM, 3, cfg, 9, { kernel: 'js' });
    const b = trainLinearProbe(TRAIN.x, TRAIN.y, DIM, 3, cfg, 9, { kernel: 'js' });
    const c = trainLinearProbe(TRAIN.x, TRAIN.y, DIM, 3, cfg, 10, { kernel: 'js' });
    expect([...a.weights]).toEqual([...b.weights]);
    expect(relativeError(c.weights, a.weights)).toBeGreaterThan(1e-4);
  });

  it('normalize on: train statistics are kept and applied by logits; features are standardised', () => {
    const probe = trainLinearProbe(TRAIN.x, TRAIN.y, DIM, 3, CFG, 0);
    const stats = featureStats(TRAIN.x, DIM);
    expect([...probe.mean!]).toEqual([...stats.mean]);
    expect([...probe.std!]).toEqual([...stats.std]);
    const row = TEST.x.subarray(0, DIM);
    const logits = probe.logits(row);
    for (let c = 0; c < 3; c++) {
      let z = probe.bias[c]!;
      for (let j = 0; j < DIM; j++) z += ((row[j]! - stats.mean[j]!) / stats.std[j]!) * probe.weights[j * 3 + c]!;
      expect(logits[c]!).toBeCloseTo(z, 3);
    }
    // Standardised inputs are invariant to a per-feature affine map, so the probe is too.
    const shifted = TRAIN.x.map((v, i) => 7 * v - 300 + (i % DIM));
    const again = trainLinearProbe(shifted, TRAIN.y, DIM, 3, CFG, 0);
    expect(relativeError(again.weights, probe.weights)).toBeLessThan(1e-3);
  });

  it('normalize off: no statistics, and raw feature scale changes the result', () => {
    const cfg: LinearEvalConfig = { ...CFG, normalize: false, base_lr: 0.01, epochs: 3 };
    const probe = trainLinearProbe(TRAIN.x, TRAIN.y, DIM, 3, cfg, 0);
    expect(probe.mean).toBeUndefined();
    expect(probe.std).toBeUndefined();
    const row = TEST.x.subarray(0, DIM);
    const logits = probe.logits(row);
    for (let c = 0; c < 3; c++) {
      let z = probe.bias[c]!;
      for (let j = 0; j < DIM; j++) z += row[j]! * probe.weights[j * 3 + c]!;
      expect(logits[c]!).toBeCloseTo(z, 3);
    }
    const scaled = trainLinearProbe(TRAIN.x.map((v) => 2 * v), TRAIN.y, DIM, 3, cfg, 0);
    expect(relativeError(scaled.weights, probe.weights)).toBeGreaterThan(1e-2);
  });

  it('leaks no tensors with the tfjs kernel (training, logits, predict)', () => {
    const before = tf.memory().numTensors;
    const probe = trainLinearProbe(TRAIN.x, TRAIN.y, DIM, 3, { ...CFG, epochs: 2 }, 0, { kernel: 'tfjs' });
    probe.predict(TEST.x);
    probe.logits(TEST.x);
    runLinearProbe(input({ cfg: { ...CFG, epochs: 1 }, kernel: 'tfjs' }));
    expect(tf.memory().numTensors).toBe(before);
  });

  it('rejects labels outside the class range, shape mismatches and an empty train set', () => {
    expect(() => trainLinearProbe(TRAIN.x, TRAIN.y, DIM, 2, CFG, 0)).toThrow(/outside \[0, 2\)/);
    expect(() => trainLinearProbe(TRAIN.x, TRAIN.y.subarray(1), DIM, 3, CFG, 0)).toThrow(/labels/);
    expect(() => trainLinearProbe(TRAIN.x.subarray(1), TRAIN.y, DIM, 3, CFG, 0)).toThrow(/multiple of dim/);
    expect(() => trainLinearProbe(new Float32Array(0), new Int32Array(0), DIM, 3, CFG, 0)).toThrow(/at least one/);
    expect(() => runLinearProbe(input({ testY: Int32Array.from(TEST.y, () => 3) }))).toThrow(/testY/);
  });
});

describe('runLinearProbe', () => {
  it('reports metrics and the protocol actually used', () => {
    const result = runLinearProbe(input());
    expect(result.metrics.accuracy).toBeGreaterThan(0.95);
    expect(result.metrics.per_class.map((c) => c.name)).toEqual(NAMES);
    expect(result.protocol).toEqual({
      optimizer: 'sgd',
      momentum: 0.9,
      lr: (0.8 * 32) / 256,
      base_lr: 0.8,
      epochs: 15,
      batch_size: 32,
      weight_decay: 0,
      schedule: 'cosine',
      normalize: true,
      label_fraction: 1,
      train_samples: 240,
      test_samples: 120,
    });
  });

  it('label_fraction trains on a stratified subset and says so', () => {
    let epochs = 0;
    const result = runLinearProbe(input({ cfg: { ...CFG, label_fraction: 0.1 }, onEpoch: () => epochs++ }));
    expect(result.protocol.train_samples).toBe(24); // 8 of each class's 80
    expect(result.protocol.test_samples).toBe(120);
    expect(epochs).toBe(15);
    expect(result.metrics.accuracy).toBeGreaterThan(0.8);
  });

  it('runLinearProbeFractions returns one result per fraction, in order, without touching the input config', () => {
    const cfg = { ...CFG, epochs: 5 };
    const results = runLinearProbeFractions(input({ cfg }), [0.05, 0.5, 1]);
    expect(results.map((r) => r.protocol.label_fraction)).toEqual([0.05, 0.5, 1]);
    expect(results.map((r) => r.protocol.train_samples)).toEqual([12, 120, 240]);
    expect(cfg.label_fraction).toBe(1);
    for (const r of results) expect(r.metrics.confusion_matrix.flat().reduce((a, b) => a + b, 0)).toBe(120);
  });
});

describe('snapshots and probabilities', () => {
  it('onSnapshot hands out an independent probe per epoch; the last one is the returned probe', () => {
    for (const kernel of ['js', 'tfjs'] as const) {
      const snaps: Array<{ epoch: number; weights: Float32Array; logits: Float32Array }> = [];
      const probe = trainLinearProbe(TRAIN.x, TRAIN.y, DIM, 3, { ...CFG, epochs: 3 }, 0, {
        kernel,
        onSnapshot: (epoch, p) => snaps.push({ epoch, weights: p.weights, logits: p.logits(TEST.x) }),
      });
      expect(snaps.map((s) => s.epoch)).toEqual([1, 2, 3]);
      // Later steps must not have changed an earlier snapshot's parameters.
      expect(relativeError(snaps[0]!.weights, snaps[2]!.weights)).toBeGreaterThan(1e-3);
      expect([...snaps[2]!.weights]).toEqual([...probe.weights]);
      expect([...snaps[2]!.logits]).toEqual([...probe.logits(TEST.x)]);
    }
  });

  it('softmaxRows sums to 1 per row, survives huge logits and keeps the argmax', () => {
    const z = Float32Array.from([1, 2, 3, 1000, -1000, 999]);
    const p = softmaxRows(z, 3);
    expect(p[0]! + p[1]! + p[2]!).toBeCloseTo(1, 12);
    expect(p[2]).toBeCloseTo(Math.exp(3) / (Math.exp(1) + Math.exp(2) + Math.exp(3)), 12);
    expect(p[3]).toBeCloseTo(1 / (1 + Math.exp(-1)), 12);
    expect(p[4]).toBe(0);
    expect([...argmaxRows(z, 3)]).toEqual([2, 0]);
    expect([...argmaxRows(p, 3)]).toEqual([2, 0]);
  });
});
