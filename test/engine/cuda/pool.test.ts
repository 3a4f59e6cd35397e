/**
 * The pooling kernels (native/cuda/kernels/pool.cu) on the CUDA host build against the cpu backend:
 * ResNet's 3x3/2 pad-1 stem pool, BiT's 3x3/2 valid pool, 'same' and odd shapes, and above all ties:
 * the gradient of a window with repeated maxima must reach its first maximum in row-major order, as in
 * tfjs' cpu kernel and PyTorch. Tolerance: 1e-5 relative (L2 norm of the difference over cpu's), per
 * output (a tie sent to the wrong element is off by O(1)); forward max pooling is compared exactly.
 */
import { describe, expect, it } from 'vitest';
import { tf } from '../../../src/engine/tf.js';
import { fallbackRuns, nativeRuns, resetKernelStats } from '../../../src/engine/kernel_stats.js';
import { Rng } from '../../../src/util/rng.js';
import { CUDA_HOST, expectSameAsCpu, loadCudaHost, valuesOn } from './helpers.js';

const load = await loadCudaHost();
const TOLERANCE = 1e-5;

function random(shape: number[], seed: string): Float32Array {
  const rng = new Rng('cuda-pool', seed);
  return Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.normal());
}

function expectNative(kernel: string, times: number): void {
  expect(nativeRuns.get(kernel) ?? 0, `${kernel} native runs`).toBe(times);
  expect(fallbackRuns.get(kernel), `${kernel} host fallbacks`).toBeUndefined();
}

type Size = number | [number, number];
interface PoolCase {
  name: string;
  x: number[];
  size: Size;
  strides: Size;
  pad: 'same' | 'valid' | number;
}

const CASES: PoolCase[] = [
  { name: 'ResNet stem 3x3/2 pad 1, batch 6', x: [6, 8, 8, 8], size: 3, strides: 2, pad: 1 },
  { name: 'BiT root 3x3/2 valid on a padded input', x: [2, 9, 9, 16], size: 3, strides: 2, pad: 'valid' },
  { name: "3x3/2 'same' on an odd input", x: [2, 9, 9, 4], size: 3, strides: 2, pad: 'same' },
  { name: "3x3/2 'same' on an even input (bottom/right pad)", x: [1, 8, 8, 3], size: 3, strides: 2, pad: 'same' },
  { name: '2x2/2 valid, odd input, batch 1', x: [1, 7, 9, 3], size: 2, strides: 2, pad: 'valid' },
  { name: '3x2 window, stride 2, pad 1', x: [2, 6, 7, 5], size: [3, 2], strides: 2, pad: 1 },
  { name: "3x3 strides [1,2] 'same'", x: [2, 6, 7, 5], size: 3, strides: [1, 2], pad: 'same' },
];

function maxPool(c: PoolCase, x: tf.Tensor): tf.Tensor4D {
  return tf.maxPool(x as tf.Tensor4D, c.size, c.strides, c.pad);
}

function avgPool(c: PoolCase, x: tf.Tensor): tf.Tensor4D {
  return tf.avgPool(x as tf.Tensor4D, c.size, c.strides, c.pad);
}

/** d/dx sum(pool(x) * dy) with a random dy: the pooling gradient kernel applied to dy. */
function poolGrad(pool: (x: tf.Tensor) => tf.Tensor, x: tf.Tensor, dySeed: string): tf.Tensor {
  const outShape = tf.tidy(() => pool(tf.zerosLike(x)).shape);
  const dy = tf.tensor(random(outShape, dySeed), outShape);
  return tf.grad((a: tf.Tensor) => tf.sum(tf.mul(pool(a), dy)))(x);
}

describe.skipIf(!load.ok)('MaxPool and MaxPoolGrad on the CUDA host build', () => {
  for (const c of CASES) {
    it(`${c.name} matches cpu, natively`, async () => {
      const x = random(c.x, `${c.name}/x`);
      resetKernelStats();
      await expectSameAsCpu(() => maxPool(c, tf.tensor(x, c.x)), 0);
      expectNative('MaxPool', 1);
      resetKernelStats();
      await expectSameAsCpu(() => poolGrad((a) => maxPool(c, a), tf.tensor(x, c.x), `${c.name}/dy`), TOLERANCE);
      expectNative('MaxPoolGrad', 1);
    });
  }

  it("a tied window's gradient goes to its first maximum (relu outputs tie at 0 everywhere)", async () => {
    const shape = [2, 8, 8, 4];
    const x = random(shape, 'ties');
    resetKernelStats();
    // 3x3/2 windows overlap, so one input can be the first maximum of several windows, or of none. The
    // gradient is taken with respect to the relu output itself: through the relu, tied zeros would be
    // masked and any tie rule would pass.
    for (const c of [CASES[0]!, CASES[1]!, { ...CASES[4]!, x: shape }]) {
      await expectSameAsCpu(() => poolGrad((a) => maxPool(c, a), tf.relu(tf.sub(tf.tensor(x, shape), 1)), 'ties/dy'), TOLERANCE);
    }
    expectNative('MaxPoolGrad', 3);
  });

  it('a constant input sends every window to its top-left element', async () => {
    const c: PoolCase = { name: 'constant', x: [1, 5, 5, 1], size: 3, strides: 2, pad: 1 };
    resetKernelStats();
    const [cpu] = await valuesOn('cpu', () => tf.grad((a: tf.Tensor) => tf.sum(maxPool(c, a)))(tf.ones(c.x)));
    const [gpu] = await valuesOn(CUDA_HOST, () => tf.grad((a: tf.Tensor) => tf.sum(maxPool(c, a)))(tf.ones(c.x)));
    // Windows start at rows and columns -1, 1 and 3; padding is not a candidate, so the first element of
    // each lies at row and column 0, 1 or 3.
    const expected = [1, 1, 0, 1, 0, 1, 1, 0, 1, 0, 0, 0, 0, 0, 0, 1, 1, 0, 1, 0, 0, 0, 0, 0, 0];
    expect(Array.from(cpu!)).toEqual(expected);
    expect(Array.from(gpu!)).toEqual(expected);
    expectNative('MaxPoolGrad', 1);
  });

  it('NaN never wins and -Infinity-only windows pass no gradient, as on cpu', async () => {
    const c: PoolCase = { name: 'special', x: [1, 4, 4, 2], size: 2, strides: 2, pad: 'valid' };
    const x = random(c.x, 'special');
    x[0] = NaN; // window (0,0) channel 0: NaN first, then finite values
    x[2 * 4 * 2 + 2 * 2 + 1] = NaN; // window (1,1) channel 1
    for (const i of [4, 6, 12, 14]) x[i] = -Infinity; // window (0,1) channel 0 entirely -Infinity
    x[5] = Infinity; // window (0,1) channel 1 has +Infinity
    resetKernelStats();
    await expectSameAsCpu(() => maxPool(c, tf.tensor(x, c.x)), 0);
    expectNative('MaxPool', 1);
    resetKernelStats();
    await expectSameAsCpu(() => poolGrad((a) => maxPool(c, a), tf.tensor(x, c.x), 'special/dy'), 0);
    expectNative('MaxPoolGrad', 1);
  });

  it("a 1x1 window that keeps the shape returns its input, NaN included, as tfjs' identity shortcut does", async () => {
    resetKernelStats();
    await expectSameAsCpu(() => tf.maxPool(tf.tensor([NaN, 1, -Infinity, 2], [1, 2, 2, 1]), 1, 1, 'valid'), 0);
    expectNative('MaxPool', 1);
  });
});

describe.skipIf(!load.ok)('AvgPool and AvgPoolGrad on the CUDA host build', () => {
  for (const c of CASES) {
    it(`${c.name} matches cpu, natively`, async () => {
      const x = random(c.x, `${c.name}/x`);
      resetKernelStats();
      await expectSameAsCpu(() => avgPool(c, tf.tensor(x, c.x)), TOLERANCE);
      expectNative('AvgPool', 1);
      resetKernelStats();
      await expectSameAsCpu(() => poolGrad((a) => avgPool(c, a), tf.tensor(x, c.x), `${c.name}/dy`), TOLERANCE);
      expectNative('AvgPoolGrad', 1);
    });
  }
});
