/**
 * The CUDA backend's storage on the host build: writes and reads of every dtype, reference counting
 * of shared views, disposal back to zero bytes, data moved in from another backend, the counted host
 * fallback, and out-of-memory reporting.
 */
import { describe, expect, it } from 'vitest';
import { tf } from '../../../src/engine/tf.js';
import { fallbackRuns, nativeRuns, resetKernelStats } from '../../../src/engine/kernel_stats.js';
import { CUDA_HOST, hostAddon, loadCudaHost } from './helpers.js';

const load = await loadCudaHost();

describe.skipIf(!load.ok)('the CUDA backend (host build)', () => {
  it('stores and reads back float32, int32, bool, string and complex64 tensors', async () => {
    await tf.setBackend(CUDA_HOST);
    const f = tf.tensor([1.5, -2, 3e-8], [3], 'float32');
    const i = tf.tensor([7, -8, 2 ** 30], [3], 'int32');
    const b = tf.tensor([true, false, true], [3], 'bool');
    const s = tf.tensor(['a', 'bc'], [2], 'string');
    const c = tf.complex([1, 2], [3, 4]);
    expect(Array.from(f.dataSync())).toEqual(Array.from(Float32Array.from([1.5, -2, 3e-8])));
    expect(i.dataSync()).toEqual(Int32Array.from([7, -8, 2 ** 30]));
    expect(b.dataSync()).toEqual(Uint8Array.from([1, 0, 1]));
    expect(await s.data()).toEqual(['a', 'bc']);
    expect(Array.from(await c.data())).toEqual([1, 3, 2, 4]);
    expect(Array.from(await f.data())).toEqual(Array.from(f.dataSync()));
    expect(tf.zeros([0, 3]).dataSync().length).toBe(0);
    tf.dispose([f, i, b, s, c]);
  });

  it('shares device memory between a tensor and its reshapes until the last one is disposed', async () => {
    await tf.setBackend(CUDA_HOST);
    const addon = hostAddon();
    const before = addon.memory().inUse;
    const x = tf.tensor2d([1, 2, 3, 4, 5, 6], [2, 3]);
    const bytes = addon.memory().inUse - before;
    expect(bytes).toBe(24);
    const y = tf.reshape(x, [3, 2]);
    const z = tf.reshape(y, [6]);
    expect(addon.memory().inUse - before).toBe(24);
    x.dispose();
    y.dispose();
    expect(Array.from(z.dataSync())).toEqual([1, 2, 3, 4, 5, 6]);
    expect(addon.memory().inUse - before).toBe(24);
    z.dispose();
    expect(addon.memory().inUse).toBe(before);
  });

  it('moves a tensor created on cpu when it is first used on the GPU backend', async () => {
    await tf.setBackend('cpu');
    const x = tf.tensor1d([1, 2, 3]);
    await tf.setBackend(CUDA_HOST);
    const y = tf.reshape(x, [3, 1]);
    expect(Array.from(y.dataSync())).toEqual([1, 2, 3]);
    tf.dispose([x, y]);
  });

  it('runs kernels without a native version on the host, counted, with the right result', async () => {
    await tf.setBackend(CUDA_HOST);
    resetKernelStats();
    // Cumsum has no native kernel, and never will: it stays a counted fallback.
    const out = tf.tidy(() => tf.cumsum(tf.tensor1d([1, 2, 3, 4])));
    expect(Array.from(out.dataSync())).toEqual([1, 3, 6, 10]);
    expect(fallbackRuns.get('Cumsum')).toBe(1);
    expect(nativeRuns.get('Cumsum')).toBeUndefined();
    out.dispose();
  });

  it('passes a kernel of several inputs (an array) to its host fallback as an array', async () => {
    await tf.setBackend(CUDA_HOST);
    const a = tf.tensor([1, 2], [2], 'float32');
    const b = tf.tensor([3, 4], [2], 'float32');
    const args = { inputs: [a, b] as unknown as tf.NamedTensorInfoMap, attrs: {}, backend: tf.backend() };
    const addN = tf.getKernel(tf.AddN, 'cpu')!.kernelFunc;
    const backend = tf.backend() as unknown as { runOnHost(n: string, k: tf.KernelFunc, a: typeof args): tf.TensorInfo };
    const out = backend.runOnHost(tf.AddN, addN, args);
    expect(Array.from(tf.engine().makeTensorFromTensorInfo(out).dataSync())).toEqual([4, 6]);
    tf.dispose([a, b]);
  });

  it('keeps the tensor count and device bytes flat over a loop of steps', async () => {
    await tf.setBackend(CUDA_HOST);
    const addon = hostAddon();
    const w = tf.variable(tf.ones([4, 4]));
    const step = () =>
      tf.tidy(() => {
        const { value, grads } = tf.variableGrads(() => tf.sum(tf.square(tf.matMul(w, tf.reshape(w, [4, 4])))), [w]);
        w.assign(tf.sub(w, tf.mul(grads[w.name]!, 1e-3)));
        return value;
      });
    step().dispose();
    const tensors = tf.memory().numTensors;
    const bytes = addon.memory().inUse;
    for (let k = 0; k < 5; k++) step().dispose();
    expect(tf.memory().numTensors).toBe(tensors);
    expect(addon.memory().inUse).toBe(bytes);
    w.dispose();
  });

  it('reports running out of device memory with the bytes asked for and free', async () => {
    const addon = hostAddon();
    addon.init(0, addon.memory().inUse + 1024, '', '');
    try {
      let error: (Error & { code?: string; requested?: number; free?: number }) | undefined;
      try {
        addon.alloc(4096);
      } catch (e) {
        error = e as typeof error;
      }
      expect(error?.code).toBe('SIMTRIP_GPU_OOM');
      expect(error?.requested).toBe(4096);
      expect(error?.free).toBe(1024);
    } finally {
      addon.init(0, 0, '', '');
    }
  });
});
