/**
 * Winograd on the onednn engine (engine.winograd, winogradPays in native/onednn/common.h): which convs
 * take it, that each mode reaches the inference plan and the training convs through initEngine, and
 * that a training conv run as Winograd still matches the cpu backend.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { tf } from '../../src/engine/tf.js';
import { initEngine, type WinogradMode } from '../../src/engine/engine.js';
import { createOnednnPlanExtractor } from '../../src/engine/onednn/inference_plan.js';
import { loadNative } from '../../src/engine/onednn/native.js';
import { relativeError, useCpuBackend } from '../helpers.js';
import { trainedLookingEncoder } from '../model/tiny.js';
import { convImplementations, DIRECT_SHAPES, HAS_AVX512, WINOGRAD_SHAPES } from './onednn_winograd_cases.js';

const native = loadNative();
const addon = native.ok ? native.addon : undefined;
const engine = addon ? await initEngine('onednn').catch(() => undefined) : undefined;

/** The number of passes (of forward, backward data, backward weights) that run Winograd under `mode`. */
async function winogradPasses(mode: WinogradMode, x: number[], f: number[], stride = 1): Promise<number> {
  await initEngine('onednn', { winograd: mode });
  return convImplementations(addon!, x, f, stride).match(/wino/g)?.length ?? 0;
}

describe.skipIf(!engine)('onednn engine.winograd', () => {
  afterAll(() => initEngine('onednn', { winograd: 'inference' }));

  it.each(WINOGRAD_SHAPES)('x %j, filter %j: all three training passes under "all" (on AVX-512), none under "inference" or "off"', async (x, f) => {
    expect(await winogradPasses('all', x, f)).toBe(HAS_AVX512 ? 3 : 0);
    expect(await winogradPasses('inference', x, f)).toBe(0);
    expect(await winogradPasses('off', x, f)).toBe(0);
  });

  it.each(DIRECT_SHAPES)('x %j, filter %j, stride %i: direct even under "all"', async (x, f, stride) => {
    expect(await winogradPasses('all', x, f, stride)).toBe(0);
  });

  it.each(WINOGRAD_SHAPES)('x %j, filter %j under "all": forward and both gradients match cpu within 1e-5', async (x, f) => {
    const run = async (backend: 'cpu' | 'onednn') => {
      if (backend === 'cpu') await useCpuBackend();
      else await initEngine('onednn', { winograd: 'all' });
      return tf.tidy(() => {
        const xs = tf.randomNormal(x, 0, 1, 'float32', 1);
        const fs = tf.randomNormal(f, 0, 1, 'float32', 2);
        const dy = tf.randomNormal([x[0]!, x[1]!, x[2]!, f[3]!], 0, 1, 'float32', 3);
        const conv = (a: tf.Tensor, b: tf.Tensor) => tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 1, 'same');
        const [dx, df] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(conv(a, b), dy)))([xs, fs]);
        return [conv(xs, fs), dx!, df!].map((t) => t.dataSync() as Float32Array);
      });
    };
    const expected = await run('cpu');
    const got = await run('onednn');
    got.forEach((g, i) => expect(relativeError(g, expected[i]!), ['forward', 'backward data', 'backward weights'][i]).toBeLessThan(1e-5));
  });

  it('the inference plan runs Winograd under "inference" and "all", not under "off"', async () => {
    const enc = trainedLookingEncoder({ arch: 'resnet18', stem: 'cifar', width: 16 });
    const images = tf.tidy(() => tf.randomNormal([16, 32, 32, 3], 0, 1, 'float32', 4).dataSync() as Float32Array);
    const expected = tf.tidy(() => enc.backbone.features(tf.tensor4d(images, [16, 32, 32, 3]), false).dataSync() as Float32Array);
    for (const mode of ['inference', 'all', 'off'] as const) {
      await initEngine('onednn', { winograd: mode });
      const plan = createOnednnPlanExtractor(enc, 32, { batchSize: 16 });
      expect(relativeError(await plan.run(images, 16), expected)).toBeLessThan(1e-4);
      expect(/wino/.test(plan.primitives()), mode).toBe(HAS_AVX512 && mode !== 'off');
      plan.dispose();
    }
    enc.store.dispose();
  });
});
