// helpers first: it loads tfjs-core (CommonJS) before src/engine/tf.ts pulls in the ESM gradient files.
import { useCpuBackend } from '../helpers.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigSchema } from '../../src/config/schema.js';
import { tf } from '../../src/engine/tf.js';
import { collapseStd, simsiamLoss } from '../../src/method/losses.js';
import type { SimSiam } from '../../src/method/simsiam.js';
import { buildSslModel, type SslModel } from '../../src/model/build.js';
import { permuteShape, toTorchPerm, type ParamStore } from '../../src/model/params.js';

beforeAll(useCpuBackend);

const FEAT = 32; // resnet18 width 4: 8 * width
const PROJ = 16;
const HIDDEN = 12;
const PRED = 4;

function build(projLayers: 2 | 3, seed = 1): SslModel {
  const config = ConfigSchema.parse({
    model: { arch: 'resnet18', stem: 'cifar', width: 4 },
    method: { proj_dim: PROJ, proj_hidden: HIDDEN, proj_layers: projLayers, pred_hidden: PRED },
  });
  return buildSslModel(config.model, config.method, seed);
}

/** Head parameters as PyTorch would list them: name -> torch-layout shape. */
function headShapes(store: ParamStore): Map<string, number[]> {
  return new Map(
    store
      .list()
      .filter((p) => !p.name.startsWith('backbone.'))
      .map((p) => [p.name, permuteShape(p.variable.shape, toTorchPerm(p.layout, p.variable.rank))]),
  );
}

const bn = (prefix: string, c: number, affine = true): Array<[string, number[]]> => [
  ...(affine
    ? ([
        [`${prefix}.weight`, [c]],
        [`${prefix}.bias`, [c]],
      ] as Array<[string, number[]]>)
    : []),
  [`${prefix}.running_mean`, [c]],
  [`${prefix}.running_var`, [c]],
];

const PREDICTOR: Array<[string, number[]]> = [
  ['predictor.0.weight', [PRED, PROJ]],
  ...bn('predictor.1', PRED),
  ['predictor.3.weight', [PROJ, PRED]],
  ['predictor.3.bias', [PROJ]],
];

describe('SimSiam heads: official nn.Sequential names and shapes', () => {
  it('proj_layers 2 (CIFAR recipe)', () => {
    const m = build(2);
    const expected = new Map<string, number[]>([
      ['projector.0.weight', [HIDDEN, FEAT]],
      ...bn('projector.1', HIDDEN),
      ['projector.3.weight', [PROJ, HIDDEN]],
      ...bn('projector.4', PROJ, false),
      ...PREDICTOR,
    ]);
    expect(Object.fromEntries(headShapes(m.store))).toEqual(Object.fromEntries(expected));
    // The last projector Linear has no bias (a non-affine BN right after it cancels one).
    expect(m.store.has('projector.3.bias')).toBe(false);
    expect(m.store.has('projector.4.weight')).toBe(false);
    expect(m.store.get('projector.4.running_mean').trainable).toBe(false);
    m.store.dispose();
  });

  it('proj_layers 3 (ImageNet recipe)', () => {
    const m = build(3);
    const expected = new Map<string, number[]>([
      ['projector.0.weight', [HIDDEN, FEAT]],
      ...bn('projector.1', HIDDEN),
      ['projector.3.weight', [HIDDEN, HIDDEN]],
      ...bn('projector.4', HIDDEN),
      ['projector.6.weight', [PROJ, HIDDEN]],
      ...bn('projector.7', PROJ, false),
      ...PREDICTOR,
    ]);
    expect(Object.fromEntries(headShapes(m.store))).toEqual(Object.fromEntries(expected));
    m.store.dispose();
  });

  it('proj_hidden defaults to proj_dim', () => {
    const config = ConfigSchema.parse({ model: { width: 4 }, method: { proj_dim: 8, proj_layers: 2, pred_hidden: 4 } });
    const m = buildSslModel(config.model, config.method, 1);
    expect(m.store.get('projector.0.weight').variable.shape).toEqual([FEAT, 8]); // tfjs [in, out]
    m.store.dispose();
  });

  it('trainable predictor parameters are in group "predictor", everything else in "default"', () => {
    const m = build(2);
    const trainable = m.store.trainable();
    const pred = trainable.filter((p) => p.name.startsWith('predictor.'));
    expect(pred.map((p) => p.name).sort()).toEqual(['predictor.0.weight', 'predictor.1.bias', 'predictor.1.weight', 'predictor.3.bias', 'predictor.3.weight']);
    for (const p of pred) expect(p.group, p.name).toBe('predictor');
    for (const p of trainable.filter((q) => !q.name.startsWith('predictor.'))) expect(p.group, p.name).toBe('default');
    // Running statistics are never trained.
    for (const p of m.store.list().filter((q) => q.name.includes('running_'))) expect(p.trainable, p.name).toBe(false);
    // Biases and BN affine parameters are flagged for the no-decay option; linear weights are not.
    expect(m.store.get('predictor.3.bias').normOrBias).toBe(true);
    expect(m.store.get('projector.1.weight').normOrBias).toBe(true);
    expect(m.store.get('projector.0.weight').normOrBias).toBe(false);
    m.store.dispose();
  });
});

describe('SimSiam.step', () => {
  let model: SslModel;
  let method: SimSiam;
  let x1: tf.Tensor4D;
  let x2: tf.Tensor4D;
  let x2b: tf.Tensor4D;
  beforeAll(() => {
    model = build(2, 4);
    method = model.method as SimSiam;
    x1 = tf.randomNormal([4, 8, 8, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
    x2 = tf.randomNormal([4, 8, 8, 3], 0, 1, 'float32', 2) as tf.Tensor4D;
    // A very different second view: shifted and scaled, so a joint BN would see other statistics.
    x2b = tf.tidy(() => tf.add(tf.mul(tf.randomNormal([4, 8, 8, 3], 0, 1, 'float32', 3), 5), 3)) as tf.Tensor4D;
  });
  afterAll(() => {
    tf.dispose([x1, x2, x2b]);
    model.store.dispose();
  });

  it('gives a loss in [-1, 1] and the collapse monitor on view 1', () => {
    expect(method.name).toBe('simsiam');
    expect(method.viewSources).toEqual(['item', 'item']);
    expect(method.needsLabels).toBe(false);
    const out = method.step([x1, x2]);
    expect(out.loss.shape).toEqual([]);
    const loss = out.loss.dataSync()[0]!;
    expect(Number.isFinite(loss)).toBe(true);
    expect(loss).toBeGreaterThanOrEqual(-1);
    expect(loss).toBeLessThanOrEqual(1);
    const std = out.collapseStd.dataSync()[0]!;
    expect(std).toBeGreaterThan(0);
    expect(std).toBeLessThan(1);
    tf.dispose([out.loss, out.collapseStd, ...Object.values(out.terms)]);
  });

  it('embeds each view with its own BatchNorm statistics', () => {
    const { z: z1 } = method.embed(x1);
    expect(z1.shape).toEqual([4, PROJ]);
    // The projector ends in a non-affine BN in training mode: over view 1's rows alone each channel has
    // mean 0 and (biased) variance ~1. With both views in one batch this would not hold per view.
    const { mean, variance } = tf.moments(z1, 0);
    for (const m of mean.dataSync()) expect(Math.abs(m)).toBeLessThan(1e-5);
    for (const v of variance.dataSync()) expect(v).toBeGreaterThan(0.99);
    tf.dispose([mean, variance]);

    // Changing view 2 leaves view 1's z (seen through the step's collapse monitor) unchanged.
    const ref = collapseStd(z1).dataSync()[0]!;
    const a = method.step([x1, x2]);
    const b = method.step([x1, x2b]);
    expect(a.collapseStd.dataSync()[0]).toBeCloseTo(ref, 6);
    expect(b.collapseStd.dataSync()[0]).toBeCloseTo(ref, 6);
    tf.dispose([z1, a.loss, a.collapseStd, b.loss, b.collapseStd]);
  });

  it('loss equals simsiamLoss of the separately embedded views', () => {
    const e1 = method.embed(x1);
    const e2 = method.embed(x2);
    expect(e1.p.shape).toEqual([4, PROJ]);
    const expected = simsiamLoss(e1.p, e2.p, e1.z, e2.z).dataSync()[0]!;
    const out = method.step([x1, x2]);
    expect(out.loss.dataSync()[0]).toBeCloseTo(expected, 6);
    // And embedding the views jointly (one BN batch) would have given another value.
    const joint = tf.tidy(() => {
      const e = method.embed(tf.concat([x1, x2], 0));
      const [z1, z2] = tf.split(e.z, 2, 0) as [tf.Tensor2D, tf.Tensor2D];
      const [p1, p2] = tf.split(e.p, 2, 0) as [tf.Tensor2D, tf.Tensor2D];
      return simsiamLoss(p1, p2, z1, z2);
    });
    expect(Math.abs(joint.dataSync()[0]! - expected)).toBeGreaterThan(1e-4);
    tf.dispose([e1.p, e1.z, e2.p, e2.z, out.loss, out.collapseStd, joint]);
  });
});
