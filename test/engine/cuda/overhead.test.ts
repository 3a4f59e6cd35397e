/**
 * Host work per op on the CUDA engine (its host build counts what the addon does): a scalar constant
 * is uploaded once and shared, a convolution filter is reordered to KRSC once per weight version and
 * freed with it, a staged batch goes to the device without a copy on the main thread, and tensors of
 * one repeated value are fills, not copies. bench/step_overhead.ts counts a whole ResNet-18 step.
 */
import { describe, expect, it } from 'vitest';
import { tf } from '../../../src/engine/tf.js';
import type { CudaBackend } from '../../../src/engine/cuda/backend.js';
import type { CudaAddon } from '../../../src/engine/cuda/native.js';
import { relativeError } from '../../helpers.js';
import { CUDA_HOST, hostAddon, loadCudaHost, valuesOn } from './helpers.js';

const load = await loadCudaHost();
const addon = (): CudaAddon => hostAddon();

/** What the addon does while f runs. */
function countsOf<T>(f: () => T): { result: T; calls: Record<string, number>; uploads: number; stagedUploads: number } {
  addon().resetCounters();
  const result = f();
  const c = addon().counters();
  return { result, calls: c.calls, uploads: c.uploads, stagedUploads: c.stagedUploads };
}

describe.skipIf(!load.ok)('host work per op on the CUDA host build', () => {
  it('uploads a scalar constant once; later tensors of that value share its device copy', async () => {
    await tf.setBackend(CUDA_HOST);
    const x = tf.tensor1d([1, 2, 3]);
    const first = countsOf(() => tf.mul(x, 0.8125));
    const again = countsOf(() => tf.mul(x, 0.8125));
    expect(first.calls.upload).toBe(1);
    expect(again.calls.upload).toBeUndefined();
    expect(again.calls.alloc).toBe(1); // the product only
    expect(Array.from(again.result.dataSync())).toEqual([0.8125, 1.625, 2.4375]);
    // -0 and 0 are different constants.
    tf.tidy(() => {
      tf.mul(x, 0);
      expect(Array.from(tf.div(x, tf.scalar(-0)).dataSync())).toEqual([-Infinity, -Infinity, -Infinity]);
    });
    const inUse = addon().memory().inUse;
    tf.dispose([first.result, again.result]);
    expect(addon().memory().inUse).toBe(inUse - 2 * 12);
    x.dispose();
  });

  it('reorders a filter to KRSC once per weight version, for every view and the backward pass, and frees the copy with it', async () => {
    const filter = () => tf.tensor4d(Array.from({ length: 3 * 3 * 4 * 6 }, (_, i) => Math.sin(i)), [3, 3, 4, 6]);
    const views = () => [0.3, 0.7].map((s) => tf.tensor4d(Array.from({ length: 2 * 5 * 5 * 4 }, (_, i) => Math.cos(i * s)), [2, 5, 5, 4]));
    const step = (w: tf.Tensor4D, xs: tf.Tensor4D[]) => tf.grads((v: tf.Tensor) => tf.addN(xs.map((x) => tf.sum(tf.square(tf.conv2d(x, v as tf.Tensor4D, 1, 'same'))))))([w])[0]!;
    const [want] = await valuesOn('cpu', () => step(filter(), views()));
    await tf.setBackend(CUDA_HOST);
    const w = filter();
    const xs = views();
    const grad = countsOf(() => step(w, xs));
    // Two forward passes and two backward-data passes on one weight: one reorder.
    expect(grad.calls.transpose2d).toBe(1);
    expect(relativeError(Array.from(grad.result.dataSync()), Array.from(want!))).toBeLessThan(1e-5);
    // A new version of the weight gets its own copy; the old one goes with its tensor.
    const w2 = tf.add(w, 1) as tf.Tensor4D;
    w.dispose();
    const again = countsOf(() => tf.conv2d(xs[0]!, w2, 1, 'same'));
    expect(again.calls.transpose2d).toBe(1);
    tf.dispose([...xs, grad.result, again.result]);
    const inUse = addon().memory().inUse;
    w2.dispose();
    expect(inUse - addon().memory().inUse).toBe(2 * 3 * 3 * 4 * 6 * 4); // the weight and its KRSC copy
  });

  it('uploads a staged batch without copying it on the main thread', async () => {
    await tf.setBackend(CUDA_HOST);
    const values = Float32Array.from({ length: 4096 }, (_, i) => i * 0.5);
    await (tf.backend() as unknown as CudaBackend).stageUpload(values);
    const staged = countsOf(() => tf.tensor2d(values, [64, 64]));
    expect(staged.stagedUploads).toBe(1);
    expect(staged.calls.upload).toBeUndefined();
    expect(staged.result.dataSync()).toEqual(values);
    // Written again, the same array is an ordinary upload.
    const plain = countsOf(() => tf.tensor2d(values, [64, 64]));
    expect(plain).toMatchObject({ uploads: 1, stagedUploads: 0 });
    tf.dispose([staged.result, plain.result]);
  });

  it('fills tensors of one repeated value on the device instead of copying them', async () => {
    await tf.setBackend(CUDA_HOST);
    const made = countsOf(() => [tf.tensor1d(new Float32Array(512)), tf.ones([256]), tf.tensor1d(Int32Array.from([7, 7, 7]), 'int32')]);
    expect(made.calls.upload).toBeUndefined();
    expect(made.calls.zero).toBe(1);
    expect(made.calls.eltwiseFill).toBeGreaterThanOrEqual(2);
    expect(Array.from(made.result[2]!.dataSync())).toEqual([7, 7, 7]);
    expect(made.result[1]!.dataSync().every((v) => v === 1)).toBe(true);
    expect(made.result[0]!.dataSync().every((v) => v === 0)).toBe(true);
    tf.dispose(made.result);
  });
});
