// helpers first: it loads tfjs-core (CommonJS) before src/engine/tf.ts pulls in the ESM gradient files.
import { useCpuBackend } from '../helpers.js';
import { beforeAll, describe, expect, it } from 'vitest';
import { ConfigSchema } from '../../src/config/schema.js';
import { tf } from '../../src/engine/tf.js';
import { Supervised } from '../../src/method/supervised.js';
import { buildSslModel } from '../../src/model/build.js';
import { permuteShape, toTorchPerm } from '../../src/model/params.js';
import { Sgd } from '../../src/optim/sgd.js';
import { trainStep } from '../../src/train/step.js';
import { Rng } from '../../src/util/rng.js';

beforeAll(useCpuBackend);

const config = ConfigSchema.parse({
  model: { arch: 'resnet18', stem: 'cifar', width: 4 },
  method: { name: 'supervised' },
});
const FEAT = 32; // resnet18 width 4: 8 * width

function build(numClasses: number, seed = 1) {
  return buildSslModel(config.model, config.method, seed, { numClasses });
}

describe('Supervised (BiT-HyperRule head)', () => {
  it('adds head.fc [K, features] beside the backbone, initialised to exactly zero', () => {
    const m = build(3);
    const head = m.store.list().filter((p) => !p.name.startsWith('backbone.'));
    expect(head.map((p) => [p.name, permuteShape(p.variable.shape, toTorchPerm(p.layout, p.variable.rank))])).toEqual([
      ['head.fc.weight', [3, FEAT]],
      ['head.fc.bias', [3]],
    ]);
    for (const p of head) expect(Array.from(p.variable.dataSync()).every((v) => v === 0), p.name).toBe(true);
    // The backbone keeps its usual init (the zero applies to the head only).
    expect(Array.from(m.store.get('backbone.conv1.weight').variable.dataSync()).some((v) => v !== 0)).toBe(true);
    expect(m.method.viewSources).toEqual(['item']);
    expect(m.method.needsLabels).toBe(true);
    m.store.dispose();
  });

  it('starts from uniform predictions: logits 0 and loss ln K', () => {
    const m = build(5);
    const method = m.method as Supervised;
    const x = tf.randomNormal([6, 8, 8, 3], 0, 1, 'float32', 3) as tf.Tensor4D;
    const logits = method.logits(x, true);
    expect(Array.from(logits.dataSync()).every((v) => v === 0)).toBe(true);
    const out = method.step([x], tf.tensor1d([0, 1, 2, 3, 4, 0], 'int32'));
    expect(out.loss.dataSync()[0]).toBeCloseTo(Math.log(5), 6);
    expect(out.collapseStd).toBeUndefined();
    tf.dispose([x, logits, out.loss, out.accuracy!]);
    m.store.dispose();
  });

  it('needs at least two classes and the labels', () => {
    expect(() => build(1)).toThrow(/at least 2 classes/);
    expect(() => buildSslModel(config.model, config.method, 1)).toThrow(/number of classes/);
    const m = build(2);
    const x = tf.zeros([2, 8, 8, 3]) as tf.Tensor4D;
    expect(() => m.method.step([x])).toThrow(/labels/);
    x.dispose();
    m.store.dispose();
  });

  it('trains with crop and flip only: colour jitter, grayscale and blur are off', () => {
    const m = build(2);
    const aug = m.method.augment!(config.data.augment);
    expect(aug).toEqual({ ...config.data.augment, jitter_prob: 0, grayscale_prob: 0, blur_prob: 0 });
    expect(aug.crop_scale).toEqual(config.data.augment.crop_scale);
    expect(aug.flip_prob).toBe(config.data.augment.flip_prob);
    m.store.dispose();
  });

  it('learns a separable toy problem (bright vs dark images) with SGD', () => {
    const m = build(2, 7);
    const sgd = new Sgd(m.store.trainable(), { momentum: 0.9, weightDecay: 0, decayNormAndBias: false });
    const rng = new Rng(9, 'toy');
    const batch = 8;
    const side = 8;
    const labels = Int32Array.from({ length: batch }, (_, i) => i % 2);
    const images = new Float32Array(batch * side * side * 3);
    for (let i = 0; i < batch; i++) {
      const level = labels[i] === 1 ? 1 : -1;
      for (let j = 0; j < side * side * 3; j++) images[i * side * side * 3 + j] = level + 0.5 * rng.normal();
    }
    const losses: number[] = [];
    let last = trainStep(m.method, m.store, sgd, [images], side, () => 0.1, { labels });
    losses.push(last.loss);
    expect(last.loss).toBeCloseTo(Math.log(2), 5);
    for (let s = 0; s < 7; s++) {
      last = trainStep(m.method, m.store, sgd, [images], side, () => 0.1, { labels });
      losses.push(last.loss);
    }
    expect(last.accuracy).toBe(1);
    expect(last.loss).toBeLessThan(0.3);
    // Inference mode (running statistics) agrees on fresh samples of the same two classes.
    const fresh = tf.tidy(() => {
      const lv = tf.tensor1d(Array.from(labels, (l) => (l === 1 ? 1 : -1)));
      const noise = tf.mul(tf.randomNormal([batch, side, side, 3], 0, 1, 'float32', 17), 0.5);
      return tf.add(noise, tf.reshape(lv, [batch, 1, 1, 1])) as tf.Tensor4D;
    });
    const pred = tf.tidy(() => tf.argMax((m.method as Supervised).logits(fresh, false), 1));
    expect(Array.from(pred.dataSync())).toEqual(Array.from(labels));
    tf.dispose([fresh, pred]);
    sgd.dispose();
    m.store.dispose();
  });
});
