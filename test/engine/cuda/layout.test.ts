/** Layout kernels on the CUDA host build against the cpu backend. */
import { describe, expect, it } from 'vitest';
import { tf } from '../../../src/engine/tf.js';
import { nativeRuns, resetKernelStats, fallbackRuns } from '../../../src/engine/kernel_stats.js';
import { asMatrixTranspose, mergeDims } from '../../../src/engine/cuda/kernels/strided.js';
import { Rng } from '../../../src/util/rng.js';
import { expectSameAsCpu, loadCudaHost } from './helpers.js';

const load = await loadCudaHost();
const rng = new Rng('cuda-layout');
const random = (shape: number[]) => Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.normal());

describe('strided views', () => {
  it('merge dimensions that step over each other and drop size-1 ones', () => {
    expect(mergeDims([2, 3, 4], [12, 4, 1])).toEqual({ shape: [24], strides: [1] });
    expect(mergeDims([2, 1, 4], [4, 4, 1])).toEqual({ shape: [8], strides: [1] });
    expect(mergeDims([2, 3, 4], [1, 8, 2])).toEqual({ shape: [2, 12], strides: [1, 2] });
    expect(mergeDims([2, 3, 4], [1, 9, 2])).toEqual({ shape: [2, 3, 4], strides: [1, 9, 2] });
  });

  // [batch, rows, cols] of the input matrices.
  it('recognise batched matrix transposes through merged dimensions', () => {
    expect(asMatrixTranspose([5, 7], [1, 0])).toEqual([1, 5, 7]);
    expect(asMatrixTranspose([2, 3, 4, 5], [0, 3, 1, 2])).toEqual([2, 12, 5]);
    expect(asMatrixTranspose([3, 3, 8, 16], [3, 0, 1, 2])).toEqual([1, 72, 16]);
    expect(asMatrixTranspose([2, 3, 4], [2, 0, 1])).toEqual([1, 6, 4]);
    expect(asMatrixTranspose([2, 3, 4], [1, 0, 2])).toBeNull();
  });
});

describe.skipIf(!load.ok)('Transpose on the CUDA host build', () => {
  const cases: Array<[number[], number[]]> = [
    [[33, 65], [1, 0]],
    [[2, 5, 7, 3], [0, 3, 1, 2]],
    [[3, 3, 8, 40], [3, 0, 1, 2]],
    [[4, 3, 2], [1, 0, 2]],
    [[2, 3, 4, 5, 6], [4, 2, 0, 3, 1]],
  ];
  for (const [shape, perm] of cases) {
    it(`[${shape}] by [${perm}] matches cpu, natively`, async () => {
      const x = random(shape);
      resetKernelStats();
      await expectSameAsCpu(() => tf.transpose(tf.tensor(x, shape), perm), 0);
      expect(nativeRuns.get('Transpose')).toBe(1);
      expect(fallbackRuns.get('Transpose')).toBeUndefined();
    });
  }

  it('transposes int32 and bool tensors', async () => {
    await expectSameAsCpu(() => tf.transpose(tf.tensor([[1, 2, 3], [4, 5, 6]], [2, 3], 'int32')), 0);
    await expectSameAsCpu(() => tf.transpose(tf.tensor([[true, false, true], [false, false, true]], [2, 3], 'bool'), [1, 0]), 0);
  });
});
