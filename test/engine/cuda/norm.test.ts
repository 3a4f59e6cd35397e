/**
 * Normalisation kernels on the CUDA host build: SimtripBatchNormTrain / SimtripGroupNorm and their
 * gradients against float64 references of the kernel contract (alone, so nothing else runs), through
 * the ops against the cpu backend's composed versions and the onednn kernels, against float64 central
 * differences, and tfjs' FusedBatchNorm against the cpu kernel.
 */
import { describe, expect, it } from 'vitest';
import { tf } from '../../../src/engine/tf.js';
import { fallbackRuns, nativeRuns, resetKernelStats } from '../../../src/engine/kernel_stats.js';
import { BATCH_NORM_TRAIN, BATCH_NORM_TRAIN_GRAD, GROUP_NORM, GROUP_NORM_GRAD } from '../../../src/engine/custom_kernels.js';
import { loadOnednn } from '../../../src/engine/onednn/loader.js';
import { batchNormTrain } from '../../../src/ops/batch_norm.js';
import { groupNorm } from '../../../src/ops/group_norm.js';
import { standardizeWeight } from '../../../src/ops/weight_standardization.js';
import { Rng } from '../../../src/util/rng.js';
import { relativeError } from '../../helpers.js';
import { CUDA_HOST, expectSameAsCpu, loadCudaHost, valuesOn } from './helpers.js';

const load = await loadCudaHost();
const onednn = await loadOnednn();
if (!onednn.ok) console.warn(`CUDA norm tests against onednn skipped: ${onednn.reason}`);

const EPS = 1e-5;
const sizeOf = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

function randomValues(n: number, seed: string, scale = 1, offset = 0): Float32Array {
  const rng = new Rng('cuda-norm-test', seed);
  return Float32Array.from({ length: n }, () => offset + scale * rng.normal());
}

/** The kernels' view of a tensor: [segments][rows][channels], groups of groupSize adjacent channels. */
interface View {
  segments: number;
  rows: number;
  channels: number;
  groupSize: number;
}

const bnView = (shape: number[]): View => ({ segments: 1, rows: sizeOf(shape) / shape.at(-1)!, channels: shape.at(-1)!, groupSize: 1 });
const gnView = (shape: number[], groups: number): View => ({
  segments: shape[0]!,
  rows: shape[1]! * shape[2]!,
  channels: shape[3]!,
  groupSize: shape[3]! / groups,
});

/** Flat indices of the values of statistic `k` (segment-major, then group). */
function members(v: View, k: number): number[] {
  const groups = v.channels / v.groupSize;
  const s = Math.floor(k / groups);
  const first = (k % groups) * v.groupSize;
  const out: number[] = [];
  for (let r = 0; r < v.rows; r++) for (let c = 0; c < v.groupSize; c++) out.push((s * v.rows + r) * v.channels + first + c);
  return out;
}

const statCount = (v: View) => (v.segments * v.channels) / v.groupSize;

/** Float64 mean and biased variance of each statistic. */
function statsF64(x: ArrayLike<number>, v: View): { mean: Float64Array; variance: Float64Array } {
  const n = statCount(v);
  const mean = new Float64Array(n);
  const variance = new Float64Array(n);
  for (let k = 0; k < n; k++) {
    const idx = members(v, k);
    mean[k] = idx.reduce((s, i) => s + x[i]!, 0) / idx.length;
    variance[k] = idx.reduce((s, i) => s + (x[i]! - mean[k]!) ** 2, 0) / idx.length;
  }
  return { mean, variance };
}

/** y of the forward contract, in float64, from the statistics given. */
function forwardF64(x: Float32Array, v: View, gamma: Float32Array, beta: Float32Array, mean: ArrayLike<number>, variance: ArrayLike<number>): Float64Array {
  const y = new Float64Array(x.length);
  for (let k = 0; k < statCount(v); k++) {
    const rstd = 1 / Math.sqrt(variance[k]! + EPS);
    for (const i of members(v, k)) {
      const c = i % v.channels;
      y[i] = (x[i]! - mean[k]!) * rstd * gamma[c]! + beta[c]!;
    }
  }
  return y;
}

/** dx, dgamma, dbeta of the backward contract, in float64, from the statistics given. */
function backwardF64(dy: Float32Array, x: Float32Array, v: View, gamma: Float32Array, mean: ArrayLike<number>, variance: ArrayLike<number>) {
  const dx = new Float64Array(x.length);
  const dgamma = new Float64Array(v.channels);
  const dbeta = new Float64Array(v.channels);
  for (let k = 0; k < statCount(v); k++) {
    const idx = members(v, k);
    const rstd = 1 / Math.sqrt(variance[k]! + EPS);
    const xhat = (i: number) => (x[i]! - mean[k]!) * rstd;
    let meanA = 0;
    let meanB = 0;
    for (const i of idx) {
      const c = i % v.channels;
      dbeta[c] += dy[i]!;
      dgamma[c] += dy[i]! * xhat(i);
      meanA += gamma[c]! * dy[i]!;
      meanB += gamma[c]! * dy[i]! * xhat(i);
    }
    meanA /= idx.length;
    meanB /= idx.length;
    for (const i of idx) dx[i] = rstd * (gamma[i % v.channels]! * dy[i]! - meanA - xhat(i) * meanB);
  }
  return { dx, dgamma, dbeta };
}

interface KernelCase {
  name: string;
  shape: number[];
  /** Group norm with this many groups; batch norm when absent. */
  groups?: number;
  scale?: number;
  offset?: number;
}

const KERNEL_CASES: KernelCase[] = [
  { name: 'BN NHWC', shape: [6, 16, 16, 8] },
  { name: 'BN projector [N, 2048] scaled down', shape: [12, 32] },
  { name: 'BN, channels not a multiple of 4', shape: [3, 5, 7, 3] },
  { name: 'BN, one channel', shape: [2, 6, 5, 1] },
  { name: 'BN, mean 1000', shape: [6, 16, 16, 8], offset: 1000 },
  { name: 'BN weight standardisation view', shape: [72, 16], scale: 0.05 },
  { name: 'GN BiT, 32 groups of 2', shape: [8, 4, 4, 64], groups: 32 },
  { name: 'GN, 3 groups of 4', shape: [2, 3, 5, 12], groups: 3 },
  { name: 'GN, groups of 3 (scalar path)', shape: [2, 4, 4, 6], groups: 2 },
  { name: 'GN, one group (layer norm)', shape: [3, 4, 4, 5], groups: 1 },
  { name: 'GN, batch 1, groups wider than a warp', shape: [1, 3, 3, 128], groups: 2 },
  { name: 'GN, mean 1000', shape: [4, 8, 8, 16], groups: 4, offset: 1000 },
  { name: 'GN, several row chunks per sample', shape: [2, 24, 24, 8], groups: 2 },
];

function kernelNames(c: KernelCase) {
  return c.groups === undefined ? { fwd: BATCH_NORM_TRAIN, bwd: BATCH_NORM_TRAIN_GRAD } : { fwd: GROUP_NORM, bwd: GROUP_NORM_GRAD };
}

function kernelInputs(c: KernelCase) {
  const channels = c.shape.at(-1)!;
  return {
    x: randomValues(sizeOf(c.shape), `${c.name}/x`, c.scale ?? 1, c.offset ?? 0),
    gamma: randomValues(channels, `${c.name}/gamma`, 0.5, 1),
    beta: randomValues(channels, `${c.name}/beta`, 0.5),
    dy: randomValues(sizeOf(c.shape), `${c.name}/dy`),
  };
}

/**
 * The largest error of a float32 mean against the exact one, in units of its own float32 ulp plus a
 * millionth of the spread: the tolerance of a mean rounded once to float32 (at 1000 the ulp dominates)
 * and computed without cancellation (near 0 the spread does: a few eps of it is the best a float32
 * sum can do).
 */
function meanError(got: ArrayLike<number>, want: ArrayLike<number>, variance: ArrayLike<number>): number {
  let worst = 0;
  for (let i = 0; i < want.length; i++) {
    const w = want[i]!;
    const ulp = w === 0 ? 0 : 2 ** (Math.floor(Math.log2(Math.abs(w))) - 23);
    worst = Math.max(worst, Math.abs(got[i]! - w) / (ulp + 1e-6 * Math.sqrt(variance[i]!)));
  }
  return worst;
}

describe.skipIf(!load.ok)('norm kernels alone on the CUDA host build against float64 references', () => {
  for (const c of KERNEL_CASES) {
    it(`${c.name} [${c.shape}]`, async () => {
      await tf.setBackend(CUDA_HOST);
      const v = c.groups === undefined ? bnView(c.shape) : gnView(c.shape, c.groups);
      const names = kernelNames(c);
      const attrs: tf.NamedAttrMap = c.groups === undefined ? { eps: EPS } : { eps: EPS, groups: c.groups };
      const inp = kernelInputs(c);
      resetKernelStats();
      const [y, mean, variance, dx, dgamma, dbeta] = tf.tidy(() => {
        const x = tf.tensor(inp.x, c.shape);
        const gamma = tf.tensor1d(inp.gamma);
        const fwd = tf.engine().runKernel(names.fwd, { x, gamma, beta: tf.tensor1d(inp.beta) }, attrs) as tf.Tensor[];
        const bwd = tf.engine().runKernel(names.bwd, { dy: tf.tensor(inp.dy, c.shape), x, gamma, mean: fwd[1]!, variance: fwd[2]! }, attrs) as tf.Tensor[];
        return [...fwd, ...bwd].map((t) => t.dataSync() as Float32Array);
      }) as Float32Array[];
      expect(Object.fromEntries(nativeRuns)).toEqual({ [names.fwd]: 1, [names.bwd]: 1 });
      expect(fallbackRuns.size).toBe(0);

      const exact = statsF64(inp.x, v);
      // The mean to within one float32 rounding of the exact one, however far from zero it is; the
      // variance without the cancellation of E[x^2] - E[x]^2 (which would be off by ~1e-1 at mean 1000).
      expect(meanError(mean!, exact.mean, exact.variance), 'mean').toBeLessThanOrEqual(1);
      expect(relativeError(variance!, exact.variance), 'variance').toBeLessThan(1e-6);
      // y, dx, dgamma, dbeta of the contract evaluated in float64 from the statistics the kernel returned.
      expect(relativeError(y!, forwardF64(inp.x, v, inp.gamma, inp.beta, mean!, variance!)), 'y').toBeLessThan(1e-6);
      const want = backwardF64(inp.dy, inp.x, v, inp.gamma, mean!, variance!);
      expect(relativeError(dx!, want.dx), 'dx').toBeLessThan(1e-5);
      expect(relativeError(dgamma!, want.dgamma), 'dgamma').toBeLessThan(1e-5);
      expect(relativeError(dbeta!, want.dbeta), 'dbeta').toBeLessThan(1e-5);
    });
  }

  it('reject inputs of the wrong size or dtype, naming them', async () => {
    await tf.setBackend(CUDA_HOST);
    tf.tidy(() => {
      const x = tf.ones([4, 3]);
      expect(() => tf.engine().runKernel(BATCH_NORM_TRAIN, { x, gamma: tf.ones([2]), beta: tf.zeros([3]) }, { eps: EPS })).toThrow(/gamma has 2 elements/);
      expect(() => tf.engine().runKernel(BATCH_NORM_TRAIN, { x: tf.ones([4, 3], 'int32'), gamma: tf.ones([3]), beta: tf.zeros([3]) }, { eps: EPS })).toThrow(
        /x must be float32/,
      );
    });
  });
});

interface OpCase {
  name: string;
  shape: number[];
  groups?: number;
  scale?: number;
  offset?: number;
}

/** y, the statistics (batch norm), and dx, dgamma, dbeta of sum(norm(x) * w) through the op. */
function opOutputs(c: OpCase): () => tf.Tensor[] {
  const inp = kernelInputs(c);
  return () => {
    const x = tf.tensor(inp.x, c.shape);
    const gamma = tf.tensor1d(inp.gamma);
    const beta = tf.tensor1d(inp.beta);
    const w = tf.tensor(inp.dy, c.shape);
    const norm = (a: tf.Tensor, g: tf.Tensor, b: tf.Tensor): tf.Tensor[] => {
      if (c.groups !== undefined) return [groupNorm(a as tf.Tensor4D, g, b, c.groups, EPS)];
      const out = batchNormTrain(a, g, b, EPS);
      return [out.y, out.mean, out.variance];
    };
    const grads = tf.grads((a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(norm(a, g, b)[0]!, w)))([x, gamma, beta]);
    return [...norm(x, gamma, beta), ...grads];
  };
}

const OP_CASES: OpCase[] = [
  { name: 'BN NHWC', shape: [6, 16, 16, 8] },
  { name: 'BN rank 2', shape: [12, 32] },
  { name: 'BN odd channels', shape: [3, 5, 7, 3] },
  { name: 'BN mean 50', shape: [4, 5, 5, 3], scale: 0.3, offset: 50 },
  { name: 'GN BiT', shape: [8, 4, 4, 64], groups: 32 },
  { name: 'GN odd groups', shape: [2, 4, 4, 6], groups: 2 },
  { name: 'GN mean 40', shape: [2, 4, 4, 8], groups: 2, scale: 3, offset: 40 },
  { name: 'GN several row chunks', shape: [2, 24, 24, 8], groups: 2 },
];

describe.skipIf(!load.ok)('batchNormTrain and groupNorm on the CUDA host build', () => {
  for (const c of OP_CASES) {
    it(`${c.name} [${c.shape}]: forward and gradients match the cpu backend's composed ops`, async () => {
      const names = kernelNames(c);
      resetKernelStats();
      await expectSameAsCpu(opOutputs(c), 1e-5);
      // Forward twice (taped and plain), backward once; they never take a host fallback.
      expect(nativeRuns.get(names.fwd)).toBe(2);
      expect(nativeRuns.get(names.bwd)).toBe(1);
      expect(fallbackRuns.get(names.fwd)).toBeUndefined();
      expect(fallbackRuns.get(names.bwd)).toBeUndefined();
    });
  }

  const onednnCases: OpCase[] = [...OP_CASES, { name: 'BN mean 1000', shape: [6, 16, 16, 8], offset: 1000 }, { name: 'GN mean 1000', shape: [4, 8, 8, 16], groups: 4, offset: 1000 }];
  for (const c of onednnCases) {
    it.skipIf(!onednn.ok)(`${c.name} [${c.shape}]: matches the onednn kernels`, async () => {
      const want = await valuesOn('onednn', opOutputs(c));
      const got = await valuesOn(CUDA_HOST, opOutputs(c));
      got.forEach((g, i) => expect(relativeError(g, want[i]!), `output ${i}`).toBeLessThan(1e-5));
    });
  }

  it('weight standardisation (batch norm of HWIO columns, eps 1e-10) matches cpu, with its gradient', async () => {
    const shape: [number, number, number, number] = [3, 3, 8, 16];
    const w = randomValues(sizeOf(shape), 'ws/w', 0.05, 0.01);
    const up = randomValues(sizeOf(shape), 'ws/up');
    resetKernelStats();
    await expectSameAsCpu(() => {
      const wt = tf.tensor4d(w, shape);
      const grad = tf.grad((a: tf.Tensor) => tf.sum(tf.mul(standardizeWeight(a as tf.Tensor4D), tf.tensor(up, shape))))(wt);
      return [standardizeWeight(wt), grad];
    }, 1e-5);
    expect(nativeRuns.get(BATCH_NORM_TRAIN)).toBe(2);
    expect(nativeRuns.get(BATCH_NORM_TRAIN_GRAD)).toBe(1);
  });

  it('leaks no tensors over repeated forward + backward', async () => {
    await tf.setBackend(CUDA_HOST);
    const x = tf.tensor(randomValues(2 * 3 * 3 * 8, 'leak/x'), [2, 3, 3, 8]);
    const gamma = tf.variable(tf.ones([8]), true, 'cuda-leak-gamma');
    const beta = tf.variable(tf.zeros([8]), true, 'cuda-leak-beta');
    const counts: number[] = [];
    for (let i = 0; i < 3; i++) {
      tf.tidy(() => {
        tf.variableGrads(() => tf.sum(tf.square(batchNormTrain(x, gamma, beta).y)) as tf.Scalar);
        tf.variableGrads(() => tf.sum(tf.square(groupNorm(x as tf.Tensor4D, gamma, beta, 4))) as tf.Scalar);
      });
      counts.push(tf.memory().numTensors);
    }
    expect(new Set(counts).size).toBe(1);
    tf.dispose([x, gamma, beta]);
  });
});

/** Float64 loss sum(norm(x) * w) for central differences. */
function lossF64(x: Float64Array, gamma: Float64Array, beta: Float64Array, w: Float32Array, v: View): number {
  const { mean, variance } = statsF64(x, v);
  let loss = 0;
  for (let k = 0; k < statCount(v); k++) {
    const rstd = 1 / Math.sqrt(variance[k]! + EPS);
    for (const i of members(v, k)) {
      const c = i % v.channels;
      loss += ((x[i]! - mean[k]!) * rstd * gamma[c]! + beta[c]!) * w[i]!;
    }
  }
  return loss;
}

describe.skipIf(!load.ok)('norm gradients on the CUDA host build against float64 central differences', () => {
  const cases: OpCase[] = [
    { name: 'BN rank 4', shape: [2, 3, 2, 4] },
    { name: 'BN rank 2, offset mean', shape: [6, 3], scale: 2, offset: 5 },
    { name: 'GN', shape: [2, 3, 2, 8], groups: 2 },
    { name: 'GN one channel per group', shape: [1, 2, 3, 3], groups: 3, offset: 5 },
  ];
  for (const c of cases) {
    it(`${c.name} [${c.shape}]`, async () => {
      const v = c.groups === undefined ? bnView(c.shape) : gnView(c.shape, c.groups);
      const inp = kernelInputs(c);
      const names = kernelNames(c);
      resetKernelStats();
      const [dx, dgamma, dbeta] = (await valuesOn(CUDA_HOST, opOutputs(c))).slice(-3);
      expect(nativeRuns.get(names.bwd)).toBe(1);
      const args = { x: Float64Array.from(inp.x), gamma: Float64Array.from(inp.gamma), beta: Float64Array.from(inp.beta) };
      const h = 1e-6;
      for (const [which, actual] of [['x', dx], ['gamma', dgamma], ['beta', dbeta]] as const) {
        const target = args[which];
        const numeric = Float64Array.from(target, (keep, i) => {
          target[i] = keep + h;
          const up = lossF64(args.x, args.gamma, args.beta, inp.dy, v);
          target[i] = keep - h;
          const down = lossF64(args.x, args.gamma, args.beta, inp.dy, v);
          target[i] = keep;
          return (up - down) / (2 * h);
        });
        expect(relativeError(actual!, numeric), `d/d${which}`).toBeLessThan(1e-4);
      }
    });
  }
});

describe.skipIf(!load.ok)('FusedBatchNorm (tf.batchNorm) on the CUDA host build', () => {
  const channels = 8;
  const params = (seed: string, n = channels) => ({
    mean: randomValues(n, `${seed}/mean`, 2),
    variance: Float32Array.from(randomValues(n, `${seed}/var`), (v) => v * v + 0.1),
    offset: randomValues(n, `${seed}/offset`),
    scale: randomValues(n, `${seed}/scale`, 0.5, 1),
  });

  const cases: Array<{ name: string; shape: number[]; lengths?: Partial<Record<'mean' | 'variance' | 'offset' | 'scale', number>>; affine?: boolean; eps?: number }> = [
    { name: 'NHWC', shape: [4, 5, 5, channels] },
    { name: 'rank 2 (the projector in eval)', shape: [12, channels] },
    { name: 'without scale and offset', shape: [3, 4, 4, channels], affine: false },
    { name: 'a length-1 scale broadcast over the channels', shape: [2, 3, 3, channels], lengths: { scale: 1 } },
    { name: 'odd channels, large eps', shape: [3, 7, 5], lengths: { mean: 5, variance: 5, offset: 5, scale: 5 }, eps: 0.1 },
  ];
  for (const c of cases) {
    it(`${c.name} [${c.shape}] matches cpu, natively`, async () => {
      const x = randomValues(sizeOf(c.shape), `${c.name}/x`, 3, 1);
      const p = params(c.name);
      const vec = (key: keyof typeof p) => tf.tensor1d(p[key].slice(0, c.lengths?.[key] ?? channels));
      resetKernelStats();
      await expectSameAsCpu(() => {
        const affine = c.affine ?? true;
        return tf.batchNorm(tf.tensor(x, c.shape), vec('mean'), vec('variance'), affine ? vec('offset') : undefined, affine ? vec('scale') : undefined, c.eps);
      }, 1e-6);
      expect(nativeRuns.get(tf.FusedBatchNorm)).toBe(1);
      expect(fallbackRuns.size).toBe(0);
    });
  }

  it('parameters whose lengths do not tile the tensor take the host fallback, with the same result', async () => {
    const x = randomValues(15, 'tile/x');
    resetKernelStats();
    await expectSameAsCpu(() => tf.batchNorm(tf.tensor(x, [3, 5]), tf.tensor1d([0.5, -1]), tf.tensor1d([1, 2]), undefined, undefined, 1e-3), 1e-6);
    expect(fallbackRuns.get(tf.FusedBatchNorm)).toBe(1);
  });
});
