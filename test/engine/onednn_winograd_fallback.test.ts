/**
 * A CPU without oneDNN's Winograd kernel: limited to AVX2 before the addon loads (oneDNN reads
 * DNNL_MAX_CPU_ISA once, at its first use), the convs winogradPays picks (engine.winograd: all) fall back to the direct
 * ones, in training and in the inference plan, and still agree with the cpu backend.
 */
process.env.DNNL_MAX_CPU_ISA = 'AVX2';

import { describe, expect, it } from 'vitest';
import { tf } from '../../src/engine/tf.js';
import { loadOnednn } from '../../src/engine/onednn/loader.js';
import { loadNative, setOnednnWinograd } from '../../src/engine/onednn/native.js';
import { createOnednnPlanExtractor } from '../../src/engine/onednn/inference_plan.js';
import { relativeError, useCpuBackend } from '../helpers.js';
import { trainedLookingEncoder } from '../model/tiny.js';
import { convImplementations, WINOGRAD_SHAPES } from './onednn_winograd_cases.js';

const onednn = await loadOnednn();
const native = loadNative();
const addon = native.ok ? native.addon : undefined;

describe.skipIf(!onednn.ok || !addon)('onednn without a Winograd kernel (ISA limited to AVX2)', () => {
  it.each(WINOGRAD_SHAPES)('x %j, filter %j under engine.winograd all: all three passes direct, and the values match cpu', async (x, f) => {
    setOnednnWinograd('all');
    expect(convImplementations(addon!, x, f)).not.toMatch(/wino/);
    const run = async (backend: 'cpu' | 'onednn') => {
      if (backend === 'cpu') await useCpuBackend();
      else await tf.setBackend('onednn');
      return tf.tidy(() => {
        const xs = tf.randomNormal(x, 0, 1, 'float32', 1);
        const fs = tf.randomNormal(f, 0, 1, 'float32', 2);
        const [dx, df] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.square(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 1, 'same'))))([xs, fs]);
        return [tf.conv2d(xs as tf.Tensor4D, fs as tf.Tensor4D, 1, 'same'), dx!, df!].map((t) => t.dataSync() as Float32Array);
      });
    };
    const expected = await run('cpu');
    const got = await run('onednn');
    got.forEach((g, i) => expect(relativeError(g, expected[i]!)).toBeLessThan(1e-5));
  });

  it('the inference plan falls back too', async () => {
    await useCpuBackend();
    const enc = trainedLookingEncoder({ arch: 'resnet18', stem: 'cifar', width: 16 });
    const plan = createOnednnPlanExtractor(enc, 32, { batchSize: 16 });
    const images = tf.tidy(() => tf.randomNormal([16, 32, 32, 3], 0, 1, 'float32', 3).dataSync() as Float32Array);
    const expected = tf.tidy(() => enc.backbone.features(tf.tensor4d(images, [16, 32, 32, 3]), false).dataSync() as Float32Array);
    expect(relativeError(await plan.run(images, 16), expected)).toBeLessThan(1e-4);
    expect(plan.primitives()).not.toMatch(/wino/);
    plan.dispose();
    enc.store.dispose();
  });
});
