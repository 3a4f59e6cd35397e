/**
 * Out of GPU memory as a user error: the CUDA engine's allocation failure (code SIMTRIP_GPU_OOM) becomes
 * one line naming the batch size, the memory asked for and free, and what to change. Exercised on the
 * host build of the CUDA engine with a simulated capacity.
 */
import { describe, expect, it } from 'vitest';
import { tf } from '../../src/engine/tf.js';
import { explainGpuOutOfMemory, gpuOutOfMemory, GpuOutOfMemoryError, withGpuMemoryHint } from '../../src/engine/out_of_memory.js';
import { UserError } from '../../src/util/errors.js';
import { CUDA_HOST, hostAddon, loadCudaHost } from './cuda/helpers.js';

const load = await loadCudaHost();

describe('out of GPU memory', () => {
  it('reads the engine error and explains it in one line', () => {
    const e = Object.assign(new Error('GPU out of memory'), { code: 'SIMTRIP_GPU_OOM', requested: 3 * 2 ** 30, free: 2 ** 30, total: 80 * 2 ** 30 });
    const oom = gpuOutOfMemory(e);
    expect(oom).toEqual({ requested: 3 * 2 ** 30, free: 2 ** 30, total: 80 * 2 ** 30 });
    const err = explainGpuOutOfMemory(oom!, 'train.batch_size', 512, ['use engine.precision: mixed16']);
    expect(err).toBeInstanceOf(UserError);
    expect(err.message).toBe(
      'GPU out of memory at train.batch_size 512: an allocation of 3.0 GiB found 1.0 GiB free of 80.0 GiB; lower train.batch_size (now 512) or use engine.precision: mixed16. The last good checkpoint is kept.',
    );
    expect(err.message).not.toContain('\n');
    expect(gpuOutOfMemory(new Error('other'))).toBeNull();
  });

  it.skipIf(!load.ok)('turns an allocation that does not fit into that error, and frees what the failed batch held', async () => {
    await tf.setBackend(CUDA_HOST);
    const addon = hostAddon();
    const before = addon.memory().inUse;
    const tensors = tf.memory().numTensors;
    addon.init(0, before + 64 * 1024, '', '');
    try {
      const run = () =>
        withGpuMemoryHint(
          () => tf.tidy(() => tf.sum(tf.mul(tf.ones([64, 64, 8]), tf.ones([64, 64, 8])))),
          'eval.batch_size',
          64,
        );
      expect(run).toThrow(GpuOutOfMemoryError);
      expect(run).toThrow(/GPU out of memory at eval\.batch_size 64: an allocation of \d+ KiB found \d+ KiB free of 64 KiB/);
      expect(addon.memory().inUse).toBe(before);
      expect(tf.memory().numTensors).toBe(tensors);
    } finally {
      addon.init(0, 0, '', '');
    }
  });
});
