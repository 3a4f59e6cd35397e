/**
 * Launch limits on the CUDA host build, which checks every launch against the device's limits: a
 * transpose with more row tiles than a grid has rows, the launch configurations of shapes too large
 * to run here (a [N*H*W, C] activation at batch 256 and 112 px, a pooling input past 2^31 elements),
 * element-wise grids of one wave of the device as its occupancy says, and convolutions whose tensors
 * pass what cuDNN's int descriptors count, run a slice of the batch at a time. The emulator lowers the
 * limits so the same code paths run at sizes a test can afford.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { tf } from '../../../src/engine/tf.js';
import type { CudaAddon, HostEmulation } from '../../../src/engine/cuda/native.js';
import { CUDA_HOST, expectSameAsCpu, hostAddon, loadCudaHost } from './helpers.js';

const load = await loadCudaHost();

interface LaunchAddon {
  transposeGrid(batch: number, rows: number, cols: number): number[];
  poolIndexBits(params: Int32Array): number;
}
const addon = () => hostAddon() as CudaAddon & HostEmulation & LaunchAddon;

afterEach(() => {
  if (load.ok) addon().emulate('clear');
});

/** Deterministic values of a shape: no two neighbours alike. */
const ramp = (shape: number[]) => tf.tensor(Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => Math.sin(i * 0.37) + i * 1e-3), shape);

describe.skipIf(!load.ok)('launch limits on the CUDA host build', () => {
  it('transposes more row tiles than the grid has rows, and more matrices than it has layers', async () => {
    addon().emulate('maxGridY', 2);
    addon().emulate('maxGridZ', 2);
    // 200 rows are 7 tiles of 32 over a grid of 2 rows; 5 matrices over 2 layers.
    await expectSameAsCpu(() => tf.transpose(ramp([5, 200, 70]), [0, 2, 1]));
    await expectSameAsCpu(() => tf.transpose(ramp([200, 3]), [1, 0]));
  });

  it('plans the transpose of [N*H*W, C] at batch 256 and 112 px (3.2 M rows) within 65,535 rows of blocks', () => {
    expect(addon().transposeGrid(1, 256 * 112 * 112, 64)).toEqual([2, 65535, 1]);
    expect(addon().transposeGrid(70000, 40, 40)).toEqual([2, 2, 65535]);
  });

  it('counts pooling indices in 64 bits when the input passes 2^31 elements, even if the output does not', () => {
    // [1, 46341, 46341, 1] is 2,147,488,281 elements; its 2x2 max pool 536,848,900.
    const params = (h: number, out: number) => Int32Array.from([1, h, h, 1, out, out, 2, 2, 2, 2, 0, 0]);
    expect(addon().poolIndexBits(params(46341, 23170))).toBe(64);
    expect(addon().poolIndexBits(params(1024, 512))).toBe(32);
  });

  it('sizes element-wise grids by occupancy: one wave of the device, not a block per 256 elements', async () => {
    await tf.setBackend(CUDA_HOST);
    const x = ramp([100000]);
    // 2 SMs holding 2 blocks of 256 threads each: 4 blocks, each striding over 25,000 elements.
    addon().emulate('smCount', 2);
    addon().emulate('maxThreadsPerSm', 512);
    addon().resetCounters();
    const y = tf.add(x, x);
    expect(addon().counters()).toMatchObject({ launches: 1, blocks: 4 });
    const got = y.dataSync();
    const want = x.dataSync();
    for (let i = 0; i < want.length; i += 997) expect(got[i]).toBe(want[i]! + want[i]!);
    tf.dispose([x, y]);
    addon().emulate('maxThreadsPerSm', 2048);
    await expectSameAsCpu(() => tf.sum(tf.mul(ramp([3000]), 2)));
  });

  it('convolves a batch whose tensors pass the library\'s element limit a slice at a time, gradients included', async () => {
    // 144 input and 288 output elements a sample: 2 samples a call under a limit of 600.
    addon().emulate('maxLibraryElements', 600);
    const run = (stride: number) => () => {
      const x = ramp([4, 6, 6, 4]);
      const w = ramp([3, 3, 4, 8]);
      const f = (a: tf.Tensor4D, b: tf.Tensor4D) => tf.sum(tf.square(tf.conv2d(a, b, stride, 'same')));
      const [dx, dw] = tf.grads(f)([x, w]);
      return [tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, stride, 'same'), dx!, dw!];
    };
    await expectSameAsCpu(run(1), 1e-4);
    await expectSameAsCpu(run(2), 1e-4);
    const plans = (addon() as CudaAddon).convPlans().map((p) => p.key.split(' '));
    expect(plans.some((k) => k[0] === '2' && k[3] === '2' && k[4] === '6')).toBe(true);
  });
});
