// helpers first: it loads tfjs-core (CommonJS) before src/engine/tf.ts pulls in the ESM gradient files.
import { useCpuBackend } from '../helpers.js';
import { beforeAll, describe, expect, it } from 'vitest';
import { ModelSchema, type ModelConfig } from '../../src/config/schema.js';
import { tf } from '../../src/engine/tf.js';
import { BitResNet, groupsFor } from '../../src/model/bit.js';
import { bitArchOf, bitSpecOf, buildEncoder, normalizationFor } from '../../src/model/build.js';
import type { ParamStore } from '../../src/model/params.js';
import { timmBitArrays } from './bit_files.js';

beforeAll(useCpuBackend);

const bit = (over: Partial<ModelConfig> = {}): ModelConfig => ModelSchema.parse({ arch: 'bit-r50x1', stem: 'cifar', width: 4, ...over });
const SMALL = { bitDepths: [1, 1, 1, 1] };

const names = (store: ParamStore) => store.list().map((p) => p.name);
const valuesOf = (store: ParamStore, re: RegExp) =>
  store
    .list()
    .filter((p) => re.test(p.name))
    .map((p) => [...(p.variable.dataSync() as Float32Array)]);

function input(seed: number): tf.Tensor4D {
  return tf.randomNormal([4, 16, 16, 3], 0, 1, 'float32', seed) as tf.Tensor4D;
}

describe('BiT from the config', () => {
  it('builds the arch depths and width factor, timm names, [-1, 1] inputs', () => {
    expect(bitSpecOf('bit-r101x3')).toEqual({ depths: [3, 4, 23, 3], widthFactor: 3 });
    expect(bitArchOf([3, 8, 36, 3], 2)).toBe('bit-r152x2');
    expect(bitArchOf([1, 1, 1, 1], 1)).toBeUndefined();
    const enc = buildEncoder(bit({ stem: 'imagenet' }), 0);
    expect(enc.backbone).toBeInstanceOf(BitResNet);
    expect(enc.normalization).toBe('bit');
    expect(normalizationFor(bit({ norm: 'batch' }))).toBe('bit');
    // width 4 stands for BiT's 64: stage outputs 16, 32, 64, 128 (x4 bottleneck expansion).
    expect(enc.backbone.featureDim).toBe(128);
    // Exactly timm's resnetv2_50x1_bit names and (PyTorch-layout) shapes, head aside.
    const expected = timmBitArrays({ depths: [3, 4, 6, 3], width: 4 }).map((a) => `backbone.${a.name}`);
    expect(names(enc.store).sort()).toEqual(expected.sort());
    expect(enc.store.get('backbone.stem.conv.weight').variable.shape).toEqual([7, 7, 3, 4]);
    enc.store.dispose();
  });

  it('GroupNorm groups are gcd(32, channels): 32 at BiT widths, every divisor-safe count below', () => {
    expect([64, 256, 2048, 192, 3 * 4096].map(groupsFor)).toEqual([32, 32, 32, 32, 32]);
    expect([4, 8, 16, 32, 48, 6].map(groupsFor)).toEqual([4, 8, 16, 32, 16, 2]);
    // A width that is not a power of two still builds.
    const enc = buildEncoder(bit({ width: 6 }), 0, SMALL);
    expect(enc.backbone.featureDim).toBe(6 * 4 * 8);
    enc.store.dispose();
  });
});

describe("BiT with model.norm 'batch' (BiT-SimSiam's variant)", () => {
  it('has BatchNorm under the same names, running statistics included, and norm3 gamma 0', () => {
    const enc = buildEncoder(bit({ norm: 'batch' }), 0, SMALL);
    const n = names(enc.store);
    for (const norm of ['stages.0.blocks.0.norm1', 'stages.2.blocks.0.norm3', 'norm']) {
      for (const k of ['weight', 'bias', 'running_mean', 'running_var']) expect(n).toContain(`backbone.${norm}.${k}`);
    }
    expect(enc.store.get('backbone.norm.running_var').trainable).toBe(false);
    expect(valuesOf(enc.store, /norm3\.weight$/).flat().every((v) => v === 0)).toBe(true);
    expect(valuesOf(enc.store, /norm[12]?\.weight$/).flat().every((v) => v === 1)).toBe(true);
    // Weight standardisation is kept: the kernels are the same parameters as in the GroupNorm model.
    const gn = buildEncoder(bit(), 0, SMALL);
    const convs = (s: ParamStore) => names(s).filter((x) => /conv\d?\.weight$/.test(x));
    expect(convs(enc.store)).toEqual(convs(gn.store));
    enc.store.dispose();
    gn.store.dispose();
  });

  it('each unit starts as the identity: its branch convs do not change the output (unless zero_init_residual is off)', () => {
    const x = input(1);
    for (const zero of [true, false]) {
      const enc = buildEncoder(bit({ norm: 'batch', zero_init_residual: zero }), 0, { bitDepths: [2, 1, 1, 1] });
      const before = enc.backbone.features(x, false);
      // The second unit of stage 0 has no projection: with gamma3 = 0 its output is its input.
      for (const conv of ['conv1', 'conv2', 'conv3']) {
        const p = enc.store.get(`backbone.stages.0.blocks.1.${conv}.weight`).variable;
        const noise = tf.randomNormal(p.shape, 0, 1, 'float32', 7);
        p.assign(noise);
        noise.dispose();
      }
      const after = enc.backbone.features(x, false);
      const diff = tf.max(tf.abs(tf.sub(before, after))).dataSync()[0]!;
      if (zero) expect(diff).toBe(0);
      else expect(diff).toBeGreaterThan(1e-4);
      tf.dispose([before, after]);
      enc.store.dispose();
    }
    x.dispose();
  });

  it('training uses batch statistics and updates the running ones; GroupNorm ignores the flag', () => {
    const x = input(2);
    const bn = buildEncoder(bit({ norm: 'batch', zero_init_residual: false }), 0, SMALL);
    const evalOut = bn.backbone.features(x, false);
    const before = tf.memory().numTensors;
    const trainOut = bn.backbone.features(x, true);
    expect(tf.memory().numTensors).toBe(before + 1);
    expect(tf.max(tf.abs(tf.sub(evalOut, trainOut))).dataSync()[0]).toBeGreaterThan(1e-3);
    // Running statistics moved from their init (mean 0, var 1) towards the batch's.
    expect(valuesOf(bn.store, /stages\.0\.blocks\.0\.norm1\.running_mean$/)[0]!.some((v) => v !== 0)).toBe(true);
    expect(valuesOf(bn.store, /^backbone\.norm\.running_var$/)[0]!.some((v) => v !== 1)).toBe(true);

    const gn = buildEncoder(bit(), 0, SMALL);
    const a = gn.backbone.features(x, false);
    const b = gn.backbone.features(x, true);
    expect(tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]).toBe(0);
    tf.dispose([x, evalOut, trainOut, a, b]);
    bn.store.dispose();
    gn.store.dispose();
  });

  it('gradients reach every trainable parameter in training mode', () => {
    const enc = buildEncoder(bit({ norm: 'batch', zero_init_residual: false }), 0, SMALL);
    const x = input(3);
    const { value, grads } = tf.variableGrads(() => tf.sum(tf.square(enc.backbone.features(x, true))) as tf.Scalar);
    expect(Number.isFinite(value.dataSync()[0]!)).toBe(true);
    for (const p of enc.store.trainable()) {
      const g = grads[p.variable.name];
      expect(g, p.name).toBeDefined();
      expect(g!.shape).toEqual(p.variable.shape);
    }
    tf.dispose([x, value, ...Object.values(grads)]);
    enc.store.dispose();
  });
});
