/** Layout kernels on the CUDA host build against the cpu backend. */
import { describe, expect, it } from 'vitest';
import { tf } from '../../../src/engine/tf.js';
import { nativeRuns, resetKernelStats, fallbackRuns } from '../../../src/engine/kernel_stats.js';
import { asMatrixTranspose, mergeDims } from '../../../src/engine/cuda/kernels/strided.js';
import { padView } from '../../../src/engine/cuda/kernels/layout.js';
import { Rng } from '../../../src/util/rng.js';
import { expectSameAsCpu, loadCudaHost, valuesOn } from './helpers.js';

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

const ints = (shape: number[], lo: number, hi: number) => tf.tensor(Int32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => lo + rng.int(hi - lo)), shape, 'int32');
const bools = (shape: number[]) => tf.tensor(Uint8Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.int(2)), shape, 'bool');
const floats = (shape: number[]) => tf.tensor(random(shape), shape);

/** f on both backends, exactly, with only native runs of `kernel` on cuda-host. */
async function expectNative(f: () => tf.Tensor | tf.Tensor[], kernel: string): Promise<void> {
  resetKernelStats();
  await expectSameAsCpu(f, 0);
  expect(nativeRuns.get(kernel), kernel).toBeGreaterThan(0);
  expect([...fallbackRuns.keys()]).toEqual([]);
}

describe('pad views', () => {
  it('fold unpadded dimensions into the one before, mirrored ones only into unpadded ones', () => {
    expect(padView([8, 5, 5, 16], [[0, 0], [1, 1], [2, 2], [0, 0]], false)).toEqual({ inShape: [8, 5, 80], before: [0, 1, 32], outShape: [8, 7, 144] });
    expect(padView([8, 5, 5, 16], [[0, 0], [1, 1], [2, 2], [0, 0]], true)).toEqual({ inShape: [8, 5, 5, 16], before: [0, 1, 2, 0], outShape: [8, 7, 9, 16] });
    expect(padView([4, 1, 6], [[0, 0], [0, 0], [0, 0]], false)).toEqual({ inShape: [24], before: [0], outShape: [24] });
    expect(padView([1], [[0, 0]], true)).toEqual({ inShape: [1], before: [0], outShape: [1] });
  });
});

describe.skipIf(!load.ok)('layout kernels on the CUDA host build', () => {
  const tensorsOf = (shape: number[]) => [floats(shape), ints(shape, -50, 50), bools(shape)];

  it('Slice: boxes of float32, int32 and bool tensors', async () => {
    for (const x of tensorsOf([5, 6, 7])) {
      await expectNative(() => tf.slice(x, [1, 0, 2], [3, -1, 4]), 'Slice');
      await expectNative(() => tf.slice(x, [2, 0, 0], [2, 6, 7]), 'Slice');
      await expectNative(() => tf.slice(x, [4, 5, 6], [1, 1, 1]), 'Slice');
      await expectNative(() => tf.slice(x, [0, 3, 0], [5, 0, 7]), 'Slice');
      x.dispose();
    }
    const v = floats([100]);
    await expectNative(() => tf.slice(v, 17, 40), 'Slice');
    v.dispose();
  });

  it('StridedSlice: strides, negative strides and every mask', async () => {
    const cases: Array<[number[], number[], number[], number, number, number, number, number]> = [
      // begin, end, strides, beginMask, endMask, ellipsisMask, newAxisMask, shrinkAxisMask
      [[1, 0, 0], [5, 6, 8], [2, 1, 3], 0, 0, 0, 0, 0],
      [[-1, 0, 0], [0, 6, 8], [-1, 1, 1], 0, 6, 0, 0, 0],
      [[0, -1, -1], [6, -7, -9], [1, -2, -3], 1, 0, 0, 0, 0],
      [[2, 1, 0], [3, 5, 8], [1, 1, 1], 0, 0, 0, 0, 1],
      [[0, -2, 0], [6, -1, 8], [1, 1, 1], 0, 0, 0, 0, 2],
      [[0, 1], [0, 3], [1, 1], 0, 0, 1, 0, 0],
      [[0, 0, 2], [6, 1, 8], [1, 1, 1], 0, 0, 0, 2, 0],
      [[0, 0, 0], [6, 6, 8], [1, 1, 1], 0, 0, 0, 0, 0],
      [[1, 0, 0], [4, 6, 8], [1, 1, 1], 0, 0, 0, 0, 0],
    ];
    for (const x of tensorsOf([6, 6, 8])) {
      for (const [begin, end, strides, bm, em, elm, nam, sam] of cases) {
        resetKernelStats();
        await expectSameAsCpu(() => tf.stridedSlice(x, begin, end, strides, bm, em, elm, nam, sam), 0);
        expect([...fallbackRuns.keys()]).toEqual([]);
      }
      x.dispose();
    }
    expect(nativeRuns.get('StridedSlice')).toBeGreaterThan(0);
  });

  it('StridedSlice: a shrunk axis with a strided one reads as TensorFlow does', async () => {
    // x[2, 1:5, ::2]. The cpu kernel's general path reads its shrunk output shape as if it kept the
    // shrunk dimension and returns x[2, 0, 1:5] etc. instead.
    const x = tf.tensor(Float32Array.from({ length: 6 * 6 * 8 }, (_, i) => i), [6, 6, 8]);
    const [got] = await valuesOn('cuda-host', () => tf.stridedSlice(x, [2, 1, 0], [3, 5, 8], [1, 1, 2], 0, 0, 0, 0, 1));
    const want = [1, 2, 3, 4].flatMap((j) => [0, 2, 4, 6].map((k) => 96 + 8 * j + k));
    expect(Array.from(got!)).toEqual(want);
    x.dispose();
  });

  it('Concat: any axis, many inputs, empty ones skipped', async () => {
    const a = floats([4, 3, 5]);
    const b = floats([4, 2, 5]);
    const c = floats([4, 7, 5]);
    await expectNative(() => tf.concat([a, b, c], 1), 'Concat');
    await expectNative(() => tf.concat([a, a, a], 0), 'Concat');
    await expectNative(() => tf.concat([a, a], -1), 'Concat');
    await expectNative(() => tf.concat([a, tf.zeros([4, 0, 5]), b], 1), 'Concat');
    const many = Array.from({ length: 19 }, (_, i) => floats([3, 1 + (i % 4)]));
    await expectNative(() => tf.concat(many, 1), 'Concat');
    const i = ints([6, 3], 0, 9);
    const j = ints([6, 4], 0, 9);
    await expectNative(() => tf.concat([i, j], 1), 'Concat');
    const p = bools([2, 5]);
    const q = bools([3, 5]);
    await expectNative(() => tf.concat([p, q], 0), 'Concat');
    tf.dispose([a, b, c, ...many, i, j, p, q]);
  });

  it('Pack and Unpack along any axis', async () => {
    const parts = Array.from({ length: 5 }, () => floats([3, 4]));
    for (const axis of [0, 1, 2, -1]) {
      await expectNative(() => tf.stack(parts, axis), 'Pack');
      await expectNative(() => tf.unstack(parts[0]!, axis === 2 ? 1 : axis), 'Unpack');
    }
    const i = [ints([2, 3], 0, 5), ints([2, 3], 0, 5)];
    await expectNative(() => tf.stack(i, 1), 'Pack');
    const b = bools([3, 2, 2]);
    await expectNative(() => tf.unstack(b, 2), 'Unpack');
    tf.dispose([...parts, ...i, b]);
  });

  it('SplitV: sizes and counts along any axis', async () => {
    for (const x of tensorsOf([6, 10, 4])) {
      await expectNative(() => tf.split(x, [2, -1, 3], 1), 'SplitV');
      await expectNative(() => tf.split(x, 3, 0), 'SplitV');
      await expectNative(() => tf.split(x, 2, -1), 'SplitV');
      x.dispose();
    }
  });

  it('Tile and BroadcastTo, past the copy kernel rank in stages', async () => {
    for (const x of tensorsOf([2, 3])) {
      await expectNative(() => tf.tile(x, [3, 2]), 'Tile');
      await expectNative(() => tf.tile(x, [1, 4]), 'Tile');
      x.dispose();
    }
    const r4 = floats([2, 3, 2, 3]);
    await expectNative(() => tf.tile(r4, [2, 3, 2, 2]), 'Tile');
    const r5 = ints([2, 1, 2, 1, 2], 0, 9);
    await expectNative(() => tf.tile(r5, [2, 2, 2, 2, 2]), 'Tile');
    const row = floats([1, 5]);
    await expectNative(() => tf.broadcastTo(row, [4, 5]), 'Tile');
    const column = floats([3, 1]);
    await expectNative(() => tf.broadcastTo(column, [2, 3, 4]), 'Tile');
    tf.dispose([r4, r5, row, column]);
  });

  it('Reverse over any set of axes', async () => {
    for (const x of tensorsOf([3, 4, 5])) {
      for (const axes of [[0], [1], [2], [0, 2], [-1, 0, 1]]) await expectNative(() => tf.reverse(x, axes), 'Reverse');
      x.dispose();
    }
  });

  it('PadV2: NHWC borders, constants, any rank and dtype', async () => {
    const nhwc = floats([2, 5, 6, 3]);
    await expectNative(() => tf.pad(nhwc, [[0, 0], [1, 1], [3, 3], [0, 0]]), 'PadV2');
    await expectNative(() => tf.pad(nhwc, [[1, 0], [0, 2], [0, 0], [2, 1]], -1.5), 'PadV2');
    const v = floats([7]);
    await expectNative(() => tf.pad(v, [[2, 5]], 3), 'PadV2');
    const r5 = ints([2, 2, 3, 2, 2], -9, 9);
    await expectNative(() => tf.pad(r5, [[1, 0], [0, 1], [1, 1], [0, 0], [2, 0]], 7), 'PadV2');
    const b = bools([3, 3]);
    await expectNative(() => tf.pad(b, [[1, 1], [0, 2]], 1), 'PadV2');
    await expectNative(() => tf.pad(tf.zeros([0, 3]), [[1, 1], [0, 0]], 2), 'PadV2');
    tf.dispose([nhwc, v, r5, b]);
  });

  it('MirrorPad: reflect and symmetric', async () => {
    const x = floats([2, 4, 5, 3]);
    for (const mode of ['reflect', 'symmetric'] as const) {
      await expectNative(() => tf.mirrorPad(x, [[0, 0], [2, 3], [1, 3], [0, 0]], mode), 'MirrorPad');
      await expectNative(() => tf.mirrorPad(x, [[1, 1], [0, 0], [0, 4], [2, 2]], mode), 'MirrorPad');
    }
    tf.dispose(x);
  });

  it('GatherV2: rows, columns, batched, int32 and bool', async () => {
    const table = floats([10, 6]);
    const idx = tf.tensor([3, 0, 9, 3, 5], [5], 'int32');
    await expectNative(() => tf.gather(table, idx), 'GatherV2');
    await expectNative(() => tf.gather(table, tf.tensor([[1, 2], [5, 0]], [2, 2], 'int32'), 1), 'GatherV2');
    const x3 = ints([3, 4, 5], -5, 5);
    await expectNative(() => tf.gather(x3, tf.tensor([4, 4, 0], [3], 'int32'), -1), 'GatherV2');
    await expectNative(() => tf.gather(x3, tf.tensor([[0, 3], [1, 1], [2, 0]], [3, 2], 'int32'), 1, 1), 'GatherV2');
    const b = bools([6, 2]);
    await expectNative(() => tf.gather(b, tf.tensor([5, 1], [2], 'int32')), 'GatherV2');
    await expectNative(() => tf.gather(table, tf.tensor([], [0], 'int32')), 'GatherV2');
    tf.dispose([table, idx, x3, b]);
  });

  it('GatherV2: out-of-range indices give 0 (the cpu kernel throws)', async () => {
    const table = tf.tensor([[1, 2], [3, 4]]);
    const [got] = await valuesOn('cuda-host', () => tf.gather(table, tf.tensor([1, 2, -1], [3], 'int32')));
    expect(Array.from(got!)).toEqual([3, 4, 0, 0, 0, 0]);
    table.dispose();
  });

  it('OneHot: depth, values, dtypes, indices out of range', async () => {
    const labels = tf.tensor([0, 3, 9, -1, 10, 4], [2, 3], 'int32');
    await expectNative(() => tf.oneHot(labels, 10), 'OneHot');
    await expectNative(() => tf.oneHot(labels, 10, 0.9, 0.01, 'float32'), 'OneHot');
    await expectNative(() => tf.oneHot(labels, 5, 1, 0, 'int32'), 'OneHot');
    await expectNative(() => tf.oneHot(labels, 5, 7, -2, 'int32'), 'OneHot');
    labels.dispose();
  });
});
