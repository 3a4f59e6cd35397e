/**
 * The convolution kernels on the CUDA host build (native/cuda/conv.cu around the reference loops of
 * host/dnn.cc) against the cpu backend: the shapes simtrip's ResNets and BiT use, asymmetric 'same'
 * padding, dilation, both gradients and FusedConv2D's epilogue. Tolerance: 1e-5 relative (L2 norm of
 * the difference over the L2 norm of cpu's result), per output.
 */
import { describe, expect, it } from 'vitest';
import { tf } from '../../../src/engine/tf.js';
import { fallbackRuns, nativeRuns, resetKernelStats } from '../../../src/engine/kernel_stats.js';
import type { CudaBackend } from '../../../src/engine/cuda/backend.js';
import { Rng } from '../../../src/util/rng.js';
import { CUDA_HOST, expectSameAsCpu, hostAddon, loadCudaHost } from './helpers.js';
import { CONV_CASES as CASES, CONV_GRADIENT_CASES, type ConvCase, conv } from '../conv_cases.js';

const load = await loadCudaHost();
const TOLERANCE = 1e-5;

function random(shape: number[], seed: string): Float32Array {
  const rng = new Rng('cuda-conv', seed);
  return Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.normal());
}

/** `kernel` ran natively exactly `times` times since the last reset, and never on the host. */
function expectNative(kernel: string, times: number): void {
  expect(nativeRuns.get(kernel) ?? 0, `${kernel} native runs`).toBe(times);
  expect(fallbackRuns.get(kernel), `${kernel} host fallbacks`).toBeUndefined();
}

function tensors(c: ConvCase): [tf.Tensor, tf.Tensor] {
  return [tf.tensor(random(c.x, `${c.name}/x`), c.x), tf.tensor(random(c.f, `${c.name}/f`), c.f)];
}

describe.skipIf(!load.ok)('Conv2D on the CUDA host build', () => {
  for (const c of CASES) {
    it(`${c.name} matches cpu, natively`, async () => {
      resetKernelStats();
      await expectSameAsCpu(() => conv(c, ...tensors(c)), TOLERANCE);
      expectNative('Conv2D', 1);
    });
  }

  it("a numeric pad with unequal strides keeps tfjs' own output shape through the host fallback", async () => {
    // tfjs sizes both output dimensions with one stride here, which no padding of cuDNN's reproduces.
    const c: ConvCase = { name: 'quirk', x: [1, 7, 11, 2], f: [3, 2, 2, 3], strides: [2, 1], pad: 1 };
    resetKernelStats();
    await expectSameAsCpu(() => conv(c, ...tensors(c)), TOLERANCE);
    expect(nativeRuns.get('Conv2D')).toBeUndefined();
    expect(fallbackRuns.get('Conv2D')).toBe(1);
  });

  it('rejects params whose output size does not follow from the padding', async () => {
    await tf.setBackend(CUDA_HOST);
    // n=1, 4x4x1 -> 4x4x1 with a 3x3 filter and no padding: the output would be 2x2.
    const params = Int32Array.from([1, 4, 4, 1, 4, 4, 1, 3, 3, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0]);
    const addon = hostAddon() as unknown as { convForward(...args: unknown[]): void };
    expect(() => addon.convForward(0, 0, 0, 0, 0, params)).toThrow(/output size/);
  });
});

describe.skipIf(!load.ok)('Conv2DBackpropInput and Conv2DBackpropFilter on the CUDA host build', () => {
  for (const c of CONV_GRADIENT_CASES) {
    it(`${c.name} matches cpu, natively`, async () => {
      const dyShape = tf.tidy(() => conv(c, tf.zeros(c.x), tf.zeros(c.f)).shape);
      const dy = random(dyShape, `${c.name}/dy`);
      resetKernelStats();
      // d/dx and d/df of sum(conv(x, f) * dy) are exactly the two backprop kernels applied to dy.
      await expectSameAsCpu(() => {
        const [x, f] = tensors(c);
        const weight = tf.tensor(dy, dyShape);
        return tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(conv(c, a, b), weight)))([x, f]);
      }, TOLERANCE);
      expectNative('Conv2DBackpropInput', 1);
      expectNative('Conv2DBackpropFilter', 1);
    });
  }
});

describe.skipIf(!load.ok)('FusedConv2D on the CUDA host build', () => {
  const c = CASES[6]!; // asymmetric padding: the epilogue runs on the padded path too
  const k = c.f[3]!;
  const fused = (x: tf.Tensor, f: tf.Tensor, bias: tf.Tensor | undefined, activation: 'relu' | 'linear' | 'elu') =>
    tf.fused.conv2d({ x: x as tf.Tensor4D, filter: f as tf.Tensor4D, strides: c.strides, pad: c.pad as 'same', bias, activation });

  it('bias + relu, bias + linear, relu without bias, a scalar bias and a [1,1,1,k] bias match cpu, natively', async () => {
    const bias = random([k], 'bias');
    resetKernelStats();
    const outs: Float32Array[] = [];
    await expectSameAsCpu(() => {
      const [x, f] = tensors(c);
      const b = tf.tensor(bias, [k]);
      const results = [
        fused(x, f, b, 'relu'),
        fused(x, f, b, 'linear'),
        fused(x, f, undefined, 'relu'),
        fused(x, f, tf.scalar(0.25), 'relu'),
        fused(x, f, tf.reshape(b, [1, 1, 1, k]), 'relu'),
      ];
      if (tf.getBackend() === CUDA_HOST) outs.push(...results.slice(0, 2).map((t) => t.dataSync() as Float32Array));
      return results;
    }, TOLERANCE);
    expectNative('FusedConv2D', 5);
    // relu must have clipped something and linear must have kept negatives, or the epilogue went untested.
    expect(outs[0]!.some((v) => v === 0)).toBe(true);
    expect(outs[1]!.some((v) => v < 0)).toBe(true);
  });

  it('relu keeps NaN, as tfjs does', async () => {
    resetKernelStats();
    await expectSameAsCpu(() => {
      const x = tf.tensor([NaN, 1, -2, 0], [1, 2, 2, 1]);
      const f = tf.tensor([1], [1, 1, 1, 1]);
      return fused(x, f, tf.scalar(0.5), 'relu');
    }, 0);
    expectNative('FusedConv2D', 1);
  });

  it('an activation without a native version runs on the host and stays exact', async () => {
    resetKernelStats();
    await expectSameAsCpu(() => {
      const [x, f] = tensors(c);
      return fused(x, f, tf.tensor(random([k], 'bias'), [k]), 'elu');
    }, TOLERANCE);
    expect(nativeRuns.get('FusedConv2D')).toBeUndefined();
    expect(fallbackRuns.get('FusedConv2D')).toBe(1);
  });

  it('a bias of the wrong shape runs on the host', async () => {
    resetKernelStats();
    await expectSameAsCpu(() => {
      const [x, f] = tensors(c);
      // [2, 1, 1, k] broadcasts along the batch as well: not a channel bias.
      return fused(x, f, tf.tensor(random([2 * k], 'bias2'), [2, 1, 1, k]), 'linear');
    }, TOLERANCE);
    expect(fallbackRuns.get('FusedConv2D')).toBe(1);
  });

  it('the math mode can be switched (the host build computes exactly either way)', async () => {
    await tf.setBackend(CUDA_HOST);
    const backend = tf.backend() as CudaBackend;
    backend.setTf32(true, true);
    try {
      resetKernelStats();
      await expectSameAsCpu(() => conv(CASES[1]!, ...tensors(CASES[1]!)), TOLERANCE);
      expectNative('Conv2D', 1);
    } finally {
      backend.setTf32(false, false);
    }
  });
});

describe.skipIf(!load.ok)('a small ResNet-style network on the CUDA host build', () => {
  it('stem, max pool, a residual block with a strided shortcut and a dense head: loss and every gradient match cpu', async () => {
    const shapes = { x: [6, 16, 16, 3], stem: [3, 3, 3, 8], a: [3, 3, 8, 16], b: [3, 3, 16, 16], short: [1, 1, 8, 16], head: [16, 4] };
    const values = Object.fromEntries(Object.entries(shapes).map(([k, s]) => [k, random(s, `net/${k}`)])) as Record<keyof typeof shapes, Float32Array>;
    resetKernelStats();
    await expectSameAsCpu(() => {
      const t = (k: keyof typeof shapes) => tf.tensor(values[k], shapes[k]);
      const loss = (stem: tf.Tensor, a: tf.Tensor, b: tf.Tensor, short: tf.Tensor, head: tf.Tensor) => {
        const h0 = tf.relu(tf.conv2d(t('x') as tf.Tensor4D, stem as tf.Tensor4D, 1, 'same'));
        const p = tf.maxPool(h0, 3, 2, 1);
        const h1 = tf.relu(tf.conv2d(p, a as tf.Tensor4D, 2, 'same'));
        const h2 = tf.conv2d(h1, b as tf.Tensor4D, 1, 1);
        const y = tf.relu(tf.add(h2, tf.conv2d(p, short as tf.Tensor4D, 2, 'valid')));
        const features = tf.mean(y, [1, 2]);
        return tf.mean(tf.square(tf.matMul(features, head)));
      };
      const { value, grads } = tf.valueAndGrads(loss)([t('stem'), t('a'), t('b'), t('short'), t('head')]);
      return [value, ...grads];
    }, TOLERANCE);
    for (const kernel of ['Conv2D', 'Conv2DBackpropInput', 'Conv2DBackpropFilter', 'MaxPool', 'MaxPoolGrad', 'BatchMatMul']) {
      expect(nativeRuns.get(kernel) ?? 0, `${kernel} native runs`).toBeGreaterThan(0);
      expect(fallbackRuns.get(kernel), `${kernel} host fallbacks`).toBeUndefined();
    }
  });
});
