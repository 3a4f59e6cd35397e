/** Reduction kernels, Softmax and TopK on the CUDA host build against the cpu backend. */
import { describe, expect, it } from 'vitest';
import { tf } from '../../../src/engine/tf.js';
import { fallbackRuns, nativeRuns, resetKernelStats } from '../../../src/engine/kernel_stats.js';
import { reductionView } from '../../../src/engine/cuda/kernels/reduce.js';
import { Rng } from '../../../src/util/rng.js';
import { CUDA_HOST, expectSameAsCpu, loadCudaHost, valuesOn } from './helpers.js';

const load = await loadCudaHost();
const rng = new Rng('cuda-reduce');
const count = (shape: number[]) => shape.reduce((a, b) => a * b, 1);
const normal = (shape: number[]) => tf.tensor(Float32Array.from({ length: count(shape) }, () => rng.normal()), shape);
const ints = (shape: number[], lo: number, hi: number) => tf.tensor(Int32Array.from({ length: count(shape) }, () => lo + rng.int(hi - lo)), shape, 'int32');
const bools = (shape: number[], p: number) => tf.tensor(Uint8Array.from({ length: count(shape) }, () => (rng.bernoulli(p) ? 1 : 0)), shape, 'bool');

/** f on both backends, and on cuda-host only the native kernels named ran. */
async function expectNative(f: () => tf.Tensor | tf.Tensor[], kernels: string[], tolerance = 1e-6): Promise<number> {
  resetKernelStats();
  const err = await expectSameAsCpu(f, tolerance);
  for (const k of kernels) expect(nativeRuns.get(k), k).toBeGreaterThan(0);
  expect([...fallbackRuns.keys()]).toEqual([]);
  return err;
}

describe('reduction views', () => {
  it('see one contiguous run of reduced axes past size-1 dimensions', () => {
    expect(reductionView([4, 5, 6], [1])).toEqual([4, 5, 6]);
    expect(reductionView([4, 5, 6], [0, 1])).toEqual([1, 20, 6]);
    expect(reductionView([4, 5, 6], [2])).toEqual([20, 6, 1]);
    expect(reductionView([8, 4, 4, 16], [1, 2])).toEqual([8, 16, 16]);
    expect(reductionView([4, 1, 5, 6], [0, 2])).toEqual([1, 20, 6]);
    expect(reductionView([4, 5, 6], [0, 2])).toBeNull();
    expect(reductionView([4, 5, 6], [])).toEqual([120, 1, 1]);
  });
});

describe.skipIf(!load.ok)('reductions on the CUDA host build', () => {
  const axisCases: Array<[number[], number | number[] | undefined]> = [
    [[37, 53], 1],
    [[37, 53], 0],
    [[37, 53], -1],
    [[6, 7, 9], [0, 2]],
    [[6, 7, 9], [-1, -2]],
    [[6, 7, 9], undefined],
    [[5, 1, 8, 3], [1, 2]],
    [[3, 300], 1],
  ];
  for (const [shape, axis] of axisCases) {
    for (const keepDims of [false, true]) {
      it(`Sum, Mean, Max, Min, Prod of [${shape}] over ${JSON.stringify(axis)}${keepDims ? ', keepDims' : ''} match cpu`, async () => {
        const x = normal(shape);
        const positive = tf.tidy(() => tf.add(tf.abs(x), 0.5));
        await expectNative(() => tf.sum(x, axis, keepDims), ['Sum']);
        await expectNative(() => tf.mean(x, axis, keepDims), ['Mean']);
        await expectNative(() => tf.max(x, axis, keepDims), ['Max'], 0);
        await expectNative(() => tf.min(x, axis, keepDims), ['Min'], 0);
        await expectNative(() => tf.prod(positive, axis, keepDims), ['Prod'], 1e-5);
        tf.dispose([x, positive]);
      });
    }
  }

  it('sum 1e5 elements to a scalar: float32 pairwise sums within 1e-6 of cpu (float64 accumulation)', async () => {
    // Uniform values: the sum is far from 0, so the relative error measures rounding, not cancellation.
    const x = tf.tensor(Float32Array.from({ length: 100_000 }, () => rng.uniform(0, 1)));
    const err = await expectNative(() => tf.sum(x), ['Sum'], 1e-6);
    expect(err).toBeLessThan(1e-6);
    await expectNative(() => tf.mean(x), ['Mean'], 1e-6);
    // Across blocks: a row long enough to be split, then its pieces folded by a second pass.
    await expectNative(() => tf.sum(tf.reshape(x, [2, 50_000]), 1), ['Sum'], 1e-6);
    x.dispose();
  });

  it('zero-mean sums stay within 1e-6 of the sum of magnitudes', async () => {
    const values = Float32Array.from({ length: 100_000 }, () => rng.normal());
    const x = tf.tensor(values);
    const [got] = await valuesOn(CUDA_HOST, () => tf.sum(x));
    const exact = values.reduce((a, v) => a + v, 0);
    const magnitude = values.reduce((a, v) => a + Math.abs(v), 0);
    expect(Math.abs(got![0]! - exact) / magnitude).toBeLessThan(1e-6);
    x.dispose();
  });

  it('reduce over axis 0 of [4000, 64] (BatchNorm gradients) across many blocks', async () => {
    const x = normal([4000, 64]);
    await expectNative(() => tf.sum(x, 0), ['Sum'], 1e-6);
    await expectNative(() => tf.mean(x, 0, true), ['Mean'], 1e-6);
    await expectNative(() => tf.max(x, 0), ['Max'], 0);
    await expectNative(() => tf.argMax(x, 0), ['ArgMax'], 0);
    x.dispose();
  });

  it('global average pool: mean over [1, 2] of NHWC', async () => {
    const x = normal([4, 9, 11, 24]);
    await expectNative(() => tf.mean(x, [1, 2]), ['Mean']);
    await expectNative(() => tf.mean(x, [1, 2], true), ['Mean']);
    await expectNative(() => tf.max(x, [1, 2]), ['Max'], 0);
    x.dispose();
  });

  it('narrow columns and short reductions', async () => {
    const x = normal([3000, 3]);
    await expectNative(() => tf.sum(x, 0), ['Sum'], 1e-6);
    const y = normal([2, 3000]);
    await expectNative(() => tf.sum(y, 0), ['Sum']);
    await expectNative(() => tf.mean(tf.reshape(y, [2, 1, 3000]), 1), ['Mean']);
    tf.dispose([x, y]);
  });

  it('int32 Sum, Max, Min, Prod and Mean', async () => {
    const x = ints([40, 70], -1000, 1000);
    for (const axis of [0, 1, undefined]) {
      await expectNative(() => tf.sum(x, axis), ['Sum'], 0);
      await expectNative(() => tf.max(x, axis), ['Max'], 0);
      await expectNative(() => tf.min(x, axis), ['Min'], 0);
      await expectNative(() => tf.mean(x, axis), ['Mean'], 1e-6);
    }
    const small = ints([6, 5], -3, 4);
    await expectNative(() => tf.prod(small, 1), ['Prod'], 0);
    // Sums past 2^31 wrap as Int32Array stores do.
    const big = tf.tensor([2_000_000_000, 2_000_000_000, 1], [3], 'int32');
    await expectNative(() => tf.sum(big), ['Sum'], 0);
    tf.dispose([x, small, big]);
  });

  it('bool Sum counts, Max, All and Any', async () => {
    for (const p of [0.5, 0.97, 0.03]) {
      const x = bools([30, 40], p);
      // tf.sum casts bool to int32 first; the kernel takes bool too.
      await expectNative(() => tf.engine().runKernel(tf.Sum, { x }, { axis: 1, keepDims: false }) as tf.Tensor, ['Sum'], 0);
      await expectNative(() => tf.max(x, 0), ['Max'], 0);
      await expectNative(() => tf.all(x, 1), ['All'], 0);
      await expectNative(() => tf.any(x, 0, true), ['Any'], 0);
      await expectNative(() => tf.all(x), ['All'], 0);
      await expectNative(() => tf.any(x), ['Any'], 0);
      x.dispose();
    }
  });

  it('Max and Min propagate NaN, keep infinities', async () => {
    const x = tf.tensor([[1, NaN, 3], [-Infinity, 2, 5], [Infinity, -1, 0], [NaN, NaN, 1]]);
    await expectNative(() => tf.max(x, 1), ['Max'], 0);
    await expectNative(() => tf.min(x, 1), ['Min'], 0);
    await expectNative(() => tf.max(x, 0), ['Max'], 0);
    await expectNative(() => tf.sum(x, 1), ['Sum'], 0);
    x.dispose();
  });

  it('ArgMax and ArgMin: first index on ties, NaN as the cpu kernel', async () => {
    const x = normal([23, 41]);
    for (const axis of [0, 1, -1]) {
      await expectNative(() => tf.argMax(x, axis), ['ArgMax'], 0);
      await expectNative(() => tf.argMin(x, axis), ['ArgMin'], 0);
    }
    const ties = tf.tensor([[1, 3, 3, 2], [5, 5, 5, 5], [-1, -2, -2, -1], [NaN, 1, 2, 0], [0, NaN, 4, 4], [-Infinity, NaN, -Infinity, NaN]]);
    for (const axis of [0, 1]) {
      await expectNative(() => tf.argMax(ties, axis), ['ArgMax'], 0);
      await expectNative(() => tf.argMin(ties, axis), ['ArgMin'], 0);
    }
    const i = ints([9, 300], -5, 5);
    await expectNative(() => tf.argMax(i, 1), ['ArgMax'], 0);
    await expectNative(() => tf.argMin(i, 0), ['ArgMin'], 0);
    const long = normal([2, 5000]);
    await expectNative(() => tf.argMax(long, 1), ['ArgMax'], 0);
    await expectNative(() => tf.argMin(tf.reshape(long, [10_000])), ['ArgMin'], 0);
    tf.dispose([x, ties, i, long]);
  });

  it('empty inputs give what cpu gives', async () => {
    const rows = tf.zeros([0, 5]);
    await expectNative(() => tf.sum(rows, 0), ['Sum'], 0);
    await expectNative(() => tf.mean(rows, 0), ['Mean'], 0);
    await expectNative(() => tf.max(rows, 0), ['Max'], 0);
    await expectNative(() => tf.min(rows, 0), ['Min'], 0);
    await expectNative(() => tf.prod(rows, 0), ['Prod'], 0);
    await expectNative(() => tf.sum(rows, 1), ['Sum'], 0);
    await expectNative(() => tf.sum(rows), ['Sum'], 0);
    const none = tf.zeros([4, 0], 'int32');
    await expectNative(() => tf.max(none, 1), ['Max'], 0);
    await expectNative(() => tf.sum(none, 1), ['Sum'], 0);
    await expectNative(() => tf.argMax(none, 1), ['ArgMax'], 0);
    const flags = tf.zeros([0, 3], 'bool');
    await expectNative(() => tf.all(flags, 0), ['All'], 0);
    await expectNative(() => tf.any(flags, 0), ['Any'], 0);
    tf.dispose([rows, none, flags]);
  });

  it('scalars, and int32 through the transposing path', async () => {
    const s = tf.scalar(2.5);
    await expectNative(() => tf.sum(s), ['Sum'], 0);
    await expectNative(() => tf.max(s), ['Max'], 0);
    await expectNative(() => tf.argMax(tf.reshape(s, [1])), ['ArgMax'], 0);
    const x = ints([4, 5, 6, 3], -20, 20);
    await expectNative(() => tf.sum(x, [0, 2]), ['Sum'], 0);
    await expectNative(() => tf.min(x, [1, 3], true), ['Min'], 0);
    tf.dispose([s, x]);
  });
});

describe.skipIf(!load.ok)('Softmax on the CUDA host build', () => {
  for (const shape of [[16, 10], [3, 5, 7], [2, 3000], [1]]) {
    it(`[${shape}] matches cpu`, async () => {
      const x = tf.mul(normal(shape), 4);
      await expectNative(() => tf.softmax(x), ['Softmax'], 1e-6);
      x.dispose();
    });
  }

  it('NaN and infinities as cpu', async () => {
    const x = tf.tensor([[1, 2, NaN], [-Infinity, 0, 1], [Infinity, 0, 1], [-Infinity, -Infinity, -Infinity]]);
    await expectNative(() => tf.softmax(x), ['Softmax'], 1e-6);
    x.dispose();
  });
});

describe.skipIf(!load.ok)('TopK on the CUDA host build', () => {
  it('the kNN monitor shape: k = 200 of 2000 similarities per row, values and int32 indices', async () => {
    const x = normal([6, 2000]);
    await expectNative(() => {
      const { values, indices } = tf.topk(x, 200);
      return [values, indices];
    }, ['TopK'], 0);
    x.dispose();
  });

  it('ties go to the lower index, as cpu', async () => {
    // Few distinct values: every selection boundary falls inside a run of equal values.
    const x = tf.tensor(Float32Array.from({ length: 8 * 300 }, () => rng.int(5) - 2), [8, 300]);
    for (const k of [1, 7, 64, 300]) {
      await expectNative(() => {
        const { values, indices } = tf.topk(x, k);
        return [values, indices];
      }, ['TopK'], 0);
    }
    const zeros = tf.tensor([[0, -0, 0, -0, 1]]);
    await expectNative(() => {
      const { values, indices } = tf.topk(zeros, 4);
      return [values, indices];
    }, ['TopK'], 0);
    tf.dispose([x, zeros]);
  });

  it('int32 rows, infinities, k = n and a rank-3 input', async () => {
    const i = ints([5, 33], -1000, 1000);
    const inf = tf.tensor([[Infinity, 1, -Infinity, 3, -Infinity, Infinity]]);
    const r3 = normal([2, 3, 50]);
    for (const [t, k] of [[i, 10], [i, 33], [inf, 6], [inf, 2], [r3, 5]] as Array<[tf.Tensor, number]>) {
      await expectNative(() => {
        const { values, indices } = tf.topk(t, k);
        return [values, indices];
      }, ['TopK'], 0);
    }
    tf.dispose([i, inf, r3]);
  });

  it('sorted: false selects the same elements', async () => {
    const x = normal([4, 100]);
    const [cpuValues] = await valuesOn('cpu', () => tf.topk(x, 10, false).values);
    const [cudaValues] = await valuesOn(CUDA_HOST, () => tf.topk(x, 10, false).values);
    for (let r = 0; r < 4; r++) {
      const row = (v: ArrayLike<number>) => Array.from(v).slice(r * 10, r * 10 + 10).sort((a, b) => a - b);
      expect(row(cudaValues!)).toEqual(row(cpuValues!));
    }
    x.dispose();
  });
});
