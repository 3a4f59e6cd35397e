/**
 * BiT ResNet-v2 parity on the golden fixture (units 1,1,1,1, width factor 1, 10 classes): the official
 * BiT npz key layout loaded through loadBitNpz, images through the 'bit' evaluation preprocessing,
 * features and logits against the reference outputs; on cpu and, where the addon is built, on onednn.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { tf } from '../../src/engine/tf.js';
import { BitResNet } from '../../src/model/bit.js';
import { bitKeyFor, loadBitNpz } from '../../src/model/bit_weights.js';
import { ParamStore } from '../../src/model/params.js';
import { loadOnednn } from '../../src/engine/onednn/loader.js';
import { InputFileError } from '../../src/util/errors.js';
import { Rng } from '../../src/util/rng.js';
import { useCpuBackend } from '../helpers.js';
import { fixture } from '../io/tmp.js';
import { expectGoldenOutputs, loadFixtureImages } from './golden.js';

beforeAll(useCpuBackend);

const onednn = await loadOnednn();
if (!onednn.ok) console.warn(`BiT parity on onednn skipped: ${onednn.reason} (${onednn.hint})`);
const backends = onednn.ok ? ['cpu', 'onednn'] : ['cpu'];

const DIR = 'bit-resnetv2-units1111';
const WEIGHTS = fixture(DIR, 'weights.npz');


function build(numClasses?: number, depths = [1, 1, 1, 1]) {
  const store = new ParamStore();
  const net = new BitResNet({ store, rng: new Rng(0, 'init') }, { depths, widthFactor: 1, stem: 'bit', numClasses }, 'backbone.');
  return { store, net };
}

describe.each(backends)('BiT ResNet-v2 parity (bit-resnetv2-units1111) on %s', (backend) => {
  it('matches the reference features and logits', async () => {
    await tf.setBackend(backend);
    const { store, net } = build(10);
    const report = await loadBitNpz(store, WEIGHTS, { prefix: 'backbone.' });
    expect(report.missing).toEqual([]);
    expect(report.ignored).toEqual([]);
    expect(report.loaded).toHaveLength(store.list().length);
    expect(report.loaded).toContain('backbone.head.fc.weight');

    const x = await loadFixtureImages(DIR, 'bit');
    const features = net.features(x, false);
    const logits = net.logits(features);
    await expectGoldenOutputs(DIR, features, logits, `BiT on ${backend}`);
    tf.dispose([x, features, logits]);
    store.dispose();
  });
});

describe('loadBitNpz', () => {
  it('skips the head when the model has no classifier and reports it as ignored', async () => {
    const { store, net } = build(undefined);
    const report = await loadBitNpz(store, WEIGHTS);
    expect(net.featureDim).toBe(2048);
    expect(report.ignored.sort()).toEqual(['resnet/head/conv2d/bias', 'resnet/head/conv2d/kernel']);
    expect(report.loaded).toHaveLength(store.list().length);
    store.dispose();
  });

  it('rejects a file that lacks units of the model, listing them, and assigns nothing', async () => {
    const { store } = build(10, [2, 1, 1, 1]);
    const before = await store.get('backbone.stem.conv.weight').variable.data();
    const err = await loadBitNpz(store, WEIGHTS).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InputFileError);
    expect((err as Error).message).toMatch(/backbone\.stages\.0\.blocks\.1\.conv1\.weight \(resnet\/block1\/unit02\/a\/standardized_conv2d\/kernel\)/);
    expect(await store.get('backbone.stem.conv.weight').variable.data()).toEqual(before);
    store.dispose();
  });

  it('rejects shape mismatches (a different head size)', async () => {
    const { store } = build(7);
    await expect(loadBitNpz(store, WEIGHTS)).rejects.toThrow(/shape mismatch.*resnet\/head\/conv2d\/kernel: file \[1, 1, 2048, 10\]/);
    store.dispose();
  });

  it('maps timm names onto BiT keys', () => {
    expect(bitKeyFor('stages.2.blocks.10.norm1.weight')).toBe('resnet/block3/unit11/a/group_norm/gamma');
    expect(bitKeyFor('stages.0.blocks.0.conv3.weight')).toBe('resnet/block1/unit01/c/standardized_conv2d/kernel');
    expect(bitKeyFor('stages.1.blocks.0.downsample.conv.weight')).toBe('resnet/block2/unit01/a/proj/standardized_conv2d/kernel');
    expect(bitKeyFor('norm.bias')).toBe('resnet/group_norm/beta');
    expect(bitKeyFor('fc.weight')).toBeNull();
  });
});

describe('BitResNet', () => {
  it('cifar stem: 3x3 stride-2 conv without max-pool, gradients reach every parameter', () => {
    const store = new ParamStore();
    const net = new BitResNet({ store, rng: new Rng(0, 'init') }, { depths: [1, 1, 1, 1], widthFactor: 1, stem: 'cifar' }, 'backbone.');
    expect(store.get('backbone.stem.conv.weight').variable.shape).toEqual([3, 3, 3, 64]);
    expect(store.has('backbone.head.fc.weight')).toBe(false);
    const x = tf.randomNormal([1, 8, 8, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
    const { value, grads } = tf.variableGrads(() => tf.sum(tf.square(net.features(x, true))) as tf.Scalar);
    expect(Number.isFinite(value.dataSync()[0]!)).toBe(true);
    for (const p of store.trainable()) {
      const g = grads[p.variable.name];
      expect(g, p.name).toBeDefined();
      expect(g!.shape).toEqual(p.variable.shape);
    }
    tf.dispose([x, value, ...Object.values(grads)]);
    store.dispose();
  });
});
