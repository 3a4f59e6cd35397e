/**
 * batchNormTrain: the composed fallback against tf.moments + tf.batchNorm and against float64 finite
 * differences, the native onednn kernels against the fallback, and tensor bookkeeping for both.
 */
import { describe, expect, it } from 'vitest';
import { tf } from '../../src/engine/tf.js';
import { loadOnednn } from '../../src/engine/onednn/loader.js';
import { loadNative } from '../../src/engine/onednn/native.js';
import { nativeRuns } from '../../src/engine/kernel_stats.js';
import { BATCH_NORM_RELU_TRAIN, BATCH_NORM_RELU_TRAIN_GRAD, BATCH_NORM_TRAIN, BATCH_NORM_TRAIN_GRAD } from '../../src/engine/custom_kernels.js';
import { batchNormReluTrain, batchNormTrain } from '../../src/ops/batch_norm.js';
import { RELU_GRAD } from '../../src/ops/relu_grad.js';
import { Rng } from '../../src/util/rng.js';
import { relativeError, useCpuBackend } from '../helpers.js';

const EPS = 1e-5;

/** Seeded N(offset, scale^2) values; the seed string makes every input of every case differ. */
function randomValues(shape: readonly number[], seed: string, scale = 1, offset = 0): Float32Array {
  const rng = new Rng('batch-norm-test', seed);
  const n = shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = offset + scale * rng.normal();
  return out;
}

interface Case {
  name: string;
  shape: number[];
  /** Input scale and offset: a mean far from zero exposes cancellation in the statistics. */
  scale?: number;
  offset?: number;
}

function inputs(c: Case) {
  const channels = c.shape[c.shape.length - 1]!;
  return {
    x: randomValues(c.shape, `${c.name}/x`, c.scale ?? 1, c.offset ?? 0),
    gamma: randomValues([channels], `${c.name}/gamma`, 0.5, 1),
    beta: randomValues([channels], `${c.name}/beta`, 0.5),
    // A non-uniform upstream gradient, so that every term of the backward formula matters.
    w: randomValues(c.shape, `${c.name}/w`),
  };
}

type Outputs = { y: Float32Array; mean: Float32Array; variance: Float32Array; dx: Float32Array; dgamma: Float32Array; dbeta: Float32Array };

/** Forward and all three gradients of sum(y * w) through batchNormTrain (or batchNormReluTrain) on the active backend. */
function runOp(c: Case, relu = false): Outputs {
  const op = relu ? batchNormReluTrain : batchNormTrain;
  const v = inputs(c);
  const channels = c.shape[c.shape.length - 1]!;
  return tf.tidy(() => {
    const x = tf.tensor(v.x, c.shape);
    const gamma = tf.tensor1d(v.gamma);
    const beta = tf.tensor1d(v.beta);
    const w = tf.tensor(v.w, c.shape);
    const { y, mean, variance } = op(x, gamma, beta, EPS);
    expect(mean.shape).toEqual([channels]);
    expect(variance.shape).toEqual([channels]);
    expect(y.shape).toEqual(c.shape);
    const [dx, dgamma, dbeta] = tf.grads((a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(op(a, g, b, EPS).y, w)))([x, gamma, beta]);
    const read = (t: tf.Tensor) => t.dataSync() as Float32Array;
    return { y: read(y), mean: read(mean), variance: read(variance), dx: read(dx!), dgamma: read(dgamma!), dbeta: read(dbeta!) };
  });
}

/** Float64 forward of sum(y * w), the function whose gradient finite differences estimate. */
function lossF64(x: Float64Array, gamma: Float64Array, beta: Float64Array, w: ArrayLike<number>, channels: number, relu = false): number {
  const rows = x.length / channels;
  let loss = 0;
  for (let c = 0; c < channels; c++) {
    let mean = 0;
    for (let r = 0; r < rows; r++) mean += x[r * channels + c]!;
    mean /= rows;
    let variance = 0;
    for (let r = 0; r < rows; r++) variance += (x[r * channels + c]! - mean) ** 2;
    variance /= rows;
    const rstd = 1 / Math.sqrt(variance + EPS);
    for (let r = 0; r < rows; r++) {
      const i = r * channels + c;
      const y = gamma[c]! * (x[i]! - mean) * rstd + beta[c]!;
      loss += (relu ? Math.max(0, y) : y) * w[i]!;
    }
  }
  return loss;
}

/** Central differences of lossF64 with respect to every element of one argument. */
function numericGrad(v: ReturnType<typeof inputs>, channels: number, which: 'x' | 'gamma' | 'beta', relu = false): Float64Array {
  const args = { x: Float64Array.from(v.x), gamma: Float64Array.from(v.gamma), beta: Float64Array.from(v.beta) };
  const target = args[which];
  const out = new Float64Array(target.length);
  const h = 1e-6;
  for (let i = 0; i < target.length; i++) {
    const keep = target[i]!;
    target[i] = keep + h;
    const up = lossF64(args.x, args.gamma, args.beta, v.w, channels, relu);
    target[i] = keep - h;
    const down = lossF64(args.x, args.gamma, args.beta, v.w, channels, relu);
    target[i] = keep;
    out[i] = (up - down) / (2 * h);
  }
  return out;
}

type TrainOp = typeof batchNormTrain;

/**
 * Four rounds of forward + backward (and a forward alone) inside tidy keep the tensor count flat, and
 * outside tidy the op adds exactly its three outputs. Returns how often `countKernel` ran natively.
 */
function expectNoLeak(op: TrainOp, label: string, countKernel: string): number {
  const x = tf.tensor(randomValues([2, 3, 3, 4], 'leak/x'), [2, 3, 3, 4]);
  const gamma = tf.variable(tf.ones([4]), true, `leak-${label}-gamma`);
  const beta = tf.variable(tf.zeros([4]), true, `leak-${label}-beta`);
  const runsBefore = nativeRuns.get(countKernel) ?? 0;
  const counts: number[] = [];
  for (let i = 0; i < 4; i++) {
    tf.tidy(() => {
      const { grads } = tf.variableGrads(() => tf.sum(tf.square(op(x, gamma, beta).y)) as tf.Scalar);
      expect(Object.keys(grads).sort()).toEqual([`leak-${label}-beta`, `leak-${label}-gamma`]);
      // Forward alone, outside any gradient tape.
      op(x, gamma, beta);
    });
    counts.push(tf.memory().numTensors);
  }
  expect(new Set(counts).size).toBe(1);
  const before = tf.memory().numTensors;
  const out = op(x, gamma, beta);
  expect(tf.memory().numTensors - before).toBe(3);
  tf.dispose([out.y, out.mean, out.variance, x, gamma, beta]);
  return (nativeRuns.get(countKernel) ?? 0) - runsBefore;
}

describe('batchNormTrain composed fallback (cpu backend)', () => {
  const cases: Case[] = [
    { name: 'rank 2', shape: [7, 5] },
    { name: 'rank 4 NHWC', shape: [3, 4, 5, 6] },
    { name: 'batch 1, spatial > 1, C = 1', shape: [1, 3, 5, 1] },
    { name: 'mean far from zero', shape: [4, 3, 3, 3], scale: 0.5, offset: 20 },
  ];

  for (const c of cases) {
    it(`forward matches tf.moments + tf.batchNorm: ${c.name}`, async () => {
      await useCpuBackend();
      const got = runOp(c);
      const v = inputs(c);
      const want = tf.tidy(() => {
        const x = tf.tensor(v.x, c.shape);
        const axes = c.shape.slice(0, -1).map((_, i) => i);
        const { mean, variance } = tf.moments(x, axes);
        const y = tf.batchNorm(x, mean, variance, tf.tensor1d(v.beta), tf.tensor1d(v.gamma), EPS);
        return { y: y.dataSync(), mean: mean.dataSync(), variance: variance.dataSync() };
      });
      expect(relativeError(got.y, want.y), 'y').toBeLessThan(1e-5);
      expect(relativeError(got.mean, want.mean), 'mean').toBeLessThan(1e-6);
      expect(relativeError(got.variance, want.variance), 'variance').toBeLessThan(1e-5);
    });
  }

  const gradCases: Case[] = [
    { name: 'rank 2 grad', shape: [6, 3] },
    { name: 'rank 4 grad, batch 1 spatial > 1', shape: [1, 3, 2, 2] },
    { name: 'rank 4 grad, odd sizes', shape: [2, 3, 1, 3] },
    { name: 'rank 4 grad, offset mean', shape: [2, 2, 2, 2], scale: 2, offset: 5 },
  ];
  for (const c of gradCases) {
    it(`gradients match float64 central differences: ${c.name}`, async () => {
      await useCpuBackend();
      const got = runOp(c);
      const v = inputs(c);
      const channels = c.shape[c.shape.length - 1]!;
      for (const [which, actual] of [['x', got.dx], ['gamma', got.dgamma], ['beta', got.dbeta]] as const) {
        const want = numericGrad(v, channels, which);
        expect(relativeError(actual, want), `d/d${which}`).toBeLessThan(1e-4);
      }
      // The x-gradient of a normalised output sums to zero per channel; a vacuous all-zero one would too.
      expect(got.dx.some((d) => Math.abs(d) > 1e-3)).toBe(true);
    });
  }

  it('rejects rank 1 and mismatched gamma', async () => {
    await useCpuBackend();
    tf.tidy(() => {
      expect(() => batchNormTrain(tf.ones([4]), tf.ones([4]), tf.zeros([4]))).toThrow(/rank >= 2/);
      expect(() => batchNormTrain(tf.ones([2, 4]), tf.ones([3]), tf.zeros([4]))).toThrow(/gamma/);
    });
  });

  it('leaks no tensors over repeated forward + backward', async () => {
    await useCpuBackend();
    expect(expectNoLeak(batchNormTrain, 'cpu', BATCH_NORM_TRAIN_GRAD)).toBe(0);
  });
});

const onednn = await loadOnednn();
const native = loadNative();
const nativeBn = native.ok && typeof native.addon.batchNormForward === 'function';
const skipReason = !onednn.ok
  ? `${onednn.reason} (${onednn.hint})`
  : !nativeBn
    ? 'the built addon predates native/onednn/batch_norm.cc (run node scripts/build-native.mjs)'
    : '';
if (skipReason) console.warn(`native batchNormTrain tests skipped: ${skipReason}`);

describe.skipIf(!!skipReason)('batchNormTrain native onednn kernels match the fallback', () => {
  const cases: Case[] = [
    { name: 'rank 2', shape: [9, 7] },
    { name: 'rank 2, C = 1', shape: [11, 1] },
    // Not 2 rows: there xhat = ±sqrt(var/(var+eps)) and the exact dx is of order eps/var, so both
    // float32 implementations keep only a few digits of it and agree to ~1e-4 at best.
    { name: 'rank 2, few rows, wide', shape: [4, 33] },
    { name: 'rank 4, C = 3, odd spatial', shape: [3, 5, 7, 3] },
    { name: 'rank 4, C = 1', shape: [2, 4, 3, 1] },
    { name: 'rank 4, batch 1', shape: [1, 6, 5, 4] },
    { name: 'rank 4, many rows', shape: [8, 16, 16, 16] },
    { name: 'rank 4, mean far from zero', shape: [4, 5, 5, 3], scale: 0.3, offset: 50 },
  ];
  for (const c of cases) {
    it(`forward and gradients: ${c.name} [${c.shape.join(',')}]`, async () => {
      await useCpuBackend();
      const want = runOp(c);
      await tf.setBackend('onednn');
      const before = { fwd: nativeRuns.get(BATCH_NORM_TRAIN) ?? 0, bwd: nativeRuns.get(BATCH_NORM_TRAIN_GRAD) ?? 0 };
      const got = runOp(c);
      expect((nativeRuns.get(BATCH_NORM_TRAIN) ?? 0) - before.fwd, 'native forward runs').toBe(2);
      expect((nativeRuns.get(BATCH_NORM_TRAIN_GRAD) ?? 0) - before.bwd, 'native backward runs').toBe(1);
      for (const key of ['y', 'mean', 'variance', 'dx', 'dgamma', 'dbeta'] as const) {
        expect(relativeError(got[key], want[key]), key).toBeLessThan(1e-5);
      }
    });
  }

  it('leaks no tensors over repeated forward + backward', async () => {
    await tf.setBackend('onednn');
    expect(expectNoLeak(batchNormTrain, 'onednn', BATCH_NORM_TRAIN_GRAD)).toBe(4);
  });
});

describe('batchNormReluTrain: batch norm with a fused ReLU', () => {
  const cases: Case[] = [
    { name: 'rank 2', shape: [9, 7] },
    { name: 'rank 4, odd spatial', shape: [3, 5, 7, 3] },
    { name: 'rank 4, many rows', shape: [8, 16, 16, 16] },
    { name: 'rank 4, mean far from zero', shape: [4, 5, 5, 3], scale: 0.3, offset: 50 },
  ];

  it('is relu(batchNormTrain) on the cpu backend, with gradients matching float64 central differences', async () => {
    await useCpuBackend();
    for (const c of [{ name: 'rank 2 grad', shape: [6, 3] }, { name: 'rank 4 grad', shape: [2, 3, 2, 2] }] as Case[]) {
      const got = runOp(c, true);
      const plain = runOp(c);
      expect([...got.y]).toEqual([...plain.y].map((v) => Math.max(0, v)));
      // Some outputs are clipped, some pass: both sides of the ReLU are exercised.
      expect(got.y.some((v) => v === 0) && got.y.some((v) => v > 0)).toBe(true);
      const v = inputs(c);
      const channels = c.shape[c.shape.length - 1]!;
      for (const [which, actual] of [['x', got.dx], ['gamma', got.dgamma], ['beta', got.dbeta]] as const) {
        expect(relativeError(actual, numericGrad(v, channels, which, true)), `${c.name} d/d${which}`).toBeLessThan(1e-4);
      }
    }
  });

  describe.skipIf(!!skipReason)('native onednn kernels', () => {
    for (const c of cases) {
      it(`match the composed op, forward and gradients, one kernel each way and no ReLU pass: ${c.name}`, async () => {
        await useCpuBackend();
        const want = runOp(c, true);
        await tf.setBackend('onednn');
        const runs = () => [BATCH_NORM_RELU_TRAIN, BATCH_NORM_RELU_TRAIN_GRAD, BATCH_NORM_TRAIN, RELU_GRAD, 'Relu', 'Step'].map((k) => nativeRuns.get(k) ?? 0);
        const before = runs();
        const got = runOp(c, true);
        const after = runs();
        expect(after.map((n, i) => n - before[i]!)).toEqual([2, 1, 0, 0, 0, 0]);
        for (const key of ['y', 'mean', 'variance', 'dx', 'dgamma', 'dbeta'] as const) {
          expect(relativeError(got[key], want[key]), key).toBeLessThan(1e-5);
        }
      });
    }

    it('matches float64 central differences on onednn too', async () => {
      await tf.setBackend('onednn');
      const c: Case = { name: 'onednn grad', shape: [2, 3, 2, 2] };
      const got = runOp(c, true);
      const v = inputs(c);
      for (const [which, actual] of [['x', got.dx], ['gamma', got.dgamma], ['beta', got.dbeta]] as const) {
        expect(relativeError(actual, numericGrad(v, 2, which, true)), `d/d${which}`).toBeLessThan(1e-4);
      }
    });

    it('leaks no tensors over repeated forward + backward', async () => {
      await tf.setBackend('onednn');
      expect(expectNoLeak(batchNormReluTrain, 'relu', BATCH_NORM_RELU_TRAIN_GRAD)).toBe(4);
    });
  });
});
