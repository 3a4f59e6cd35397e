/**
 * BatchMatMul and _FusedMatMul on the CUDA host build (native/cuda/matmul.cu's row-major to
 * column-major mapping around host/blas.cc's reference GEMM) against the cpu backend: every transpose
 * combination, ranks 2 to 4, batch broadcasts, and the bias/relu epilogue. Tolerance: 1e-5 relative
 * (L2 norm of the difference over cpu's), per output.
 */
import { describe, expect, it } from 'vitest';
import { tf } from '../../../src/engine/tf.js';
import { fallbackRuns, nativeRuns, resetKernelStats } from '../../../src/engine/kernel_stats.js';
import { Rng } from '../../../src/util/rng.js';
import { CUDA_HOST, expectSameAsCpu, loadCudaHost } from './helpers.js';
import { MATMUL_CASES, matmulShapes, TRANSPOSES } from './matmul_cases.js';

const load = await loadCudaHost();
const TOLERANCE = 1e-5;

function random(shape: number[], seed: string): Float32Array {
  const rng = new Rng('cuda-matmul', seed);
  return Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.normal());
}

function input(shape: number[], seed: string): tf.Tensor {
  return tf.tensor(random(shape, seed), shape);
}

function expectNative(kernel: string, times: number): void {
  expect(nativeRuns.get(kernel) ?? 0, `${kernel} native runs`).toBe(times);
  expect(fallbackRuns.get(kernel), `${kernel} host fallbacks`).toBeUndefined();
}

describe.skipIf(!load.ok)('BatchMatMul on the CUDA host build', () => {
  for (const c of MATMUL_CASES) {
    for (const [tA, tB] of TRANSPOSES) {
      it(`${c.name}, transposeA=${tA} transposeB=${tB}, matches cpu natively`, async () => {
        const [aShape, bShape] = matmulShapes(c, tA, tB);
        resetKernelStats();
        await expectSameAsCpu(() => tf.matMul(input(aShape, `${c.name}/a`), input(bShape, `${c.name}/b`), tA, tB), TOLERANCE);
        expectNative('BatchMatMul', 1);
      });
    }
  }

  it('an inner dimension of 0 gives zeros, natively', async () => {
    resetKernelStats();
    await expectSameAsCpu(() => tf.matMul(tf.zeros([2, 3, 0]), tf.zeros([2, 0, 4])), 0);
    expectNative('BatchMatMul', 1);
  });

  it('NaN and Infinity propagate as on cpu', async () => {
    const a = random([3, 4], 'nan/a');
    a[1] = NaN;
    a[6] = Infinity;
    resetKernelStats();
    await expectSameAsCpu(() => tf.matMul(tf.tensor(a, [3, 4]), tf.abs(input([4, 2], 'nan/b'))), TOLERANCE);
    expectNative('BatchMatMul', 1);
  });

  it('a batch broadcast that needs two strides on one side runs on the host', async () => {
    resetKernelStats();
    // b's batch [3] repeats along a's first batch axis: no single stride walks it.
    await expectSameAsCpu(() => tf.matMul(input([2, 3, 3, 4], 'x/a'), input([3, 4, 5], 'x/b')), TOLERANCE);
    expect(nativeRuns.get('BatchMatMul')).toBeUndefined();
    expect(fallbackRuns.get('BatchMatMul')).toBe(1);
  });

  it('int32 operands run on the host', async () => {
    resetKernelStats();
    await expectSameAsCpu(() => tf.matMul(tf.tensor([[1, 2], [3, 4]], [2, 2], 'int32'), tf.tensor([[5], [6]], [2, 1], 'int32')), 0);
    expect(fallbackRuns.get('BatchMatMul')).toBe(1);
  });
});

describe.skipIf(!load.ok)('_FusedMatMul on the CUDA host build', () => {
  for (const [tA, tB] of TRANSPOSES) {
    it(`bias + relu, bias + linear, a scalar bias and a [1, n] bias, transposeA=${tA} transposeB=${tB}, match cpu natively`, async () => {
      const [aShape, bShape] = matmulShapes({ batchA: [], batchB: [], m: 6, k: 10, n: 7 }, tA, tB);
      resetKernelStats();
      let relu: Float32Array | null = null;
      await expectSameAsCpu(() => {
        const a = input(aShape, 'a');
        const b = input(bShape, 'b');
        const bias = input([7], 'bias');
        const fused = (activation: 'relu' | 'linear', bias?: tf.Tensor) => tf.fused.matMul({ a, b, transposeA: tA, transposeB: tB, bias, activation });
        const out = [fused('relu', bias), fused('linear', bias), fused('relu', tf.scalar(-0.5)), fused('relu', tf.reshape(bias, [1, 7])), fused('relu')];
        if (tf.getBackend() === CUDA_HOST) relu = out[0]!.dataSync() as Float32Array;
        return out;
      }, TOLERANCE);
      expectNative('_FusedMatMul', 5);
      // relu must have clipped something, or the epilogue went untested.
      expect(relu!.some((v) => v === 0)).toBe(true);
    });
  }

  it('a batched product with bias + relu matches cpu natively', async () => {
    resetKernelStats();
    await expectSameAsCpu(
      () => tf.fused.matMul({ a: input([3, 5, 8], 'ba'), b: input([8, 4], 'bb'), bias: input([4], 'bbias'), activation: 'relu' }),
      TOLERANCE,
    );
    expectNative('_FusedMatMul', 1);
  });

  it('an activation without a native version runs on the host', async () => {
    resetKernelStats();
    await expectSameAsCpu(() => tf.fused.matMul({ a: input([4, 6], 'ea'), b: input([6, 3], 'eb'), bias: input([3], 'ebias'), activation: 'elu' }), TOLERANCE);
    expect(fallbackRuns.get('_FusedMatMul')).toBe(1);
  });

  // Under a gradient tape tfjs does not fuse a relu: the forward pass is a BatchMatMul, then Add and Relu.
  it('gradients through a dense layer (matmuls with transposes in the backward pass) match cpu natively', async () => {
    resetKernelStats();
    await expectSameAsCpu(() => {
      const grads = tf.grads((x: tf.Tensor, w: tf.Tensor, b: tf.Tensor) => tf.sum(tf.square(tf.fused.matMul({ a: x, b: w, bias: b, activation: 'relu' }))));
      return grads([input([5, 8], 'gx'), input([8, 3], 'gw'), input([3], 'gb')]);
    }, TOLERANCE);
    expectNative('BatchMatMul', 3);
  });
});
