// helpers first: it loads tfjs-core (CommonJS) before src/engine/tf.ts pulls in the ESM gradient files.
import { useCpuBackend } from '../helpers.js';
import { beforeAll, describe, expect, it } from 'vitest';
import { ModelSchema, type ModelConfig } from '../../src/config/schema.js';
import { tf } from '../../src/engine/tf.js';
import { BACKBONE_PREFIX, buildEncoder, type EncoderModel } from '../../src/model/build.js';
import { ParamStore, permuteShape, toTorchPerm } from '../../src/model/params.js';
import { ResNet, type BlockKind } from '../../src/model/resnet.js';
import { Rng } from '../../src/util/rng.js';

beforeAll(useCpuBackend);

const model = (over: Partial<ModelConfig> = {}): ModelConfig => ModelSchema.parse({ arch: 'resnet18', stem: 'cifar', width: 4, ...over });

/**
 * torchvision's state dict (fc and num_batches_tracked left out) with PyTorch shapes, written from the
 * architecture: conv1/bn1, then layer1..4 of basic (expansion 1) or bottleneck (expansion 4) blocks,
 * downsample.{0,1} where stride != 1 or the channel count changes.
 */
function torchvisionStateDict(block: BlockKind, layers: number[], width: number, stem: 'cifar' | 'imagenet'): Map<string, number[]> {
  const sd = new Map<string, number[]>();
  const bn = (name: string, c: number): void => {
    for (const k of ['weight', 'bias', 'running_mean', 'running_var']) sd.set(`${name}.${k}`, [c]);
  };
  const k = stem === 'cifar' ? 3 : 7;
  sd.set('conv1.weight', [width, 3, k, k]);
  bn('bn1', width);
  const expansion = block === 'basic' ? 1 : 4;
  let cin = width;
  layers.forEach((n, s) => {
    const planes = width * 2 ** s;
    for (let b = 0; b < n; b++) {
      const name = `layer${s + 1}.${b}`;
      const stride = b === 0 && s > 0 ? 2 : 1;
      if (block === 'basic') {
        sd.set(`${name}.conv1.weight`, [planes, cin, 3, 3]);
        bn(`${name}.bn1`, planes);
        sd.set(`${name}.conv2.weight`, [planes, planes, 3, 3]);
        bn(`${name}.bn2`, planes);
      } else {
        sd.set(`${name}.conv1.weight`, [planes, cin, 1, 1]);
        bn(`${name}.bn1`, planes);
        sd.set(`${name}.conv2.weight`, [planes, planes, 3, 3]);
        bn(`${name}.bn2`, planes);
        sd.set(`${name}.conv3.weight`, [planes * 4, planes, 1, 1]);
        bn(`${name}.bn3`, planes * 4);
      }
      if (stride !== 1 || cin !== planes * expansion) {
        sd.set(`${name}.downsample.0.weight`, [planes * expansion, cin, 1, 1]);
        bn(`${name}.downsample.1`, planes * expansion);
      }
      cin = planes * expansion;
    }
  });
  return sd;
}

const trainableCount = (sd: Map<string, number[]>): number =>
  [...sd].filter(([n]) => !n.includes('running_')).reduce((s, [, shape]) => s + shape.reduce((a, b) => a * b, 1), 0);

/** The encoder's parameters as name (prefix stripped) -> PyTorch shape. */
function torchShapes(store: ParamStore): Map<string, number[]> {
  return new Map(
    store.list().map((p) => {
      expect(p.name.startsWith(BACKBONE_PREFIX), p.name).toBe(true);
      return [p.name.slice(BACKBONE_PREFIX.length), permuteShape(p.variable.shape, toTorchPerm(p.layout, p.variable.rank))];
    }),
  );
}

describe('torchvision names, shapes and parameter counts', () => {
  it('the reference architecture has torchvision\'s published counts (fc = in*1000 + 1000 removed)', () => {
    // torchvision: resnet18 11,689,512 and resnet50 25,557,032 parameters with the 1000-class fc.
    expect(trainableCount(torchvisionStateDict('basic', [2, 2, 2, 2], 64, 'imagenet'))).toBe(11_689_512 - (512 * 1000 + 1000));
    expect(trainableCount(torchvisionStateDict('bottleneck', [3, 4, 6, 3], 64, 'imagenet'))).toBe(25_557_032 - (2048 * 1000 + 1000));
    expect(11_689_512 - 513_000).toBe(11_176_512);
    expect(25_557_032 - 2_049_000).toBe(23_508_032);
  });

  it('resnet18 (width 64, imagenet stem): same names and shapes as torchvision, 11,176,512 trainable', () => {
    const enc = buildEncoder(model({ arch: 'resnet18', stem: 'imagenet', width: 64 }), 0);
    const expected = torchvisionStateDict('basic', [2, 2, 2, 2], 64, 'imagenet');
    expect(Object.fromEntries(torchShapes(enc.store))).toEqual(Object.fromEntries(expected));
    expect(enc.store.list().length).toBe(expected.size); // 60 weights/biases + 40 running stats
    expect(enc.store.count()).toBe(11_176_512);
    expect(enc.backbone.featureDim).toBe(512);
    // Kaiming normal (fan_out, ReLU gain) on a large conv: std = sqrt(2 / (cout * k * k)).
    const w = enc.store.get('backbone.layer4.1.conv2.weight').variable;
    const { mean, variance } = tf.moments(w);
    expect(Math.abs(mean.dataSync()[0]!)).toBeLessThan(1e-3);
    expect(Math.sqrt(variance.dataSync()[0]!) / Math.sqrt(2 / (512 * 9))).toBeCloseTo(1, 2);
    tf.dispose([mean, variance]);
    enc.store.dispose();
  });

  it('resnet50 (width 64, imagenet stem): same names and shapes as torchvision, 23,508,032 trainable', () => {
    const enc = buildEncoder(model({ arch: 'resnet50', stem: 'imagenet', width: 64 }), 0);
    const expected = torchvisionStateDict('bottleneck', [3, 4, 6, 3], 64, 'imagenet');
    expect(Object.fromEntries(torchShapes(enc.store))).toEqual(Object.fromEntries(expected));
    expect(enc.store.count()).toBe(23_508_032);
    expect(enc.backbone.featureDim).toBe(2048);
    enc.store.dispose();
  });

  it('the CIFAR stem swaps only conv1 for a 3x3 kernel', () => {
    const enc = buildEncoder(model({ arch: 'resnet18', stem: 'cifar', width: 64 }), 0);
    expect(Object.fromEntries(torchShapes(enc.store))).toEqual(Object.fromEntries(torchvisionStateDict('basic', [2, 2, 2, 2], 64, 'cifar')));
    expect(enc.store.count()).toBe(11_176_512 - 64 * 3 * (49 - 9));
    enc.store.dispose();
  });

  it('an optional classifier head is fc.weight [classes, features] and fc.bias', () => {
    const store = new ParamStore();
    const net = new ResNet({ store, rng: new Rng(0, 'init') }, { block: 'basic', layers: [2, 2, 2, 2], stem: 'cifar', width: 4, zeroInitResidual: true, numClasses: 10 });
    expect(permuteShape(store.get('fc.weight').variable.shape, toTorchPerm('linear', 2))).toEqual([10, 32]);
    expect(store.get('fc.bias').variable.shape).toEqual([10]);
    const x = tf.randomNormal([2, 8, 8, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
    const logits = tf.tidy(() => net.logits(net.features(x, false)));
    expect(logits.shape).toEqual([2, 10]);
    tf.dispose([x, logits]);
    store.dispose();
  });
});

describe('width scales every stage', () => {
  for (const arch of ['resnet18', 'resnet50'] as const) {
    it(arch, () => {
      const a = buildEncoder(model({ arch, width: 4 }), 0);
      const b = buildEncoder(model({ arch, width: 8 }), 0);
      const sa = torchShapes(a.store);
      const sb = torchShapes(b.store);
      expect([...sb.keys()]).toEqual([...sa.keys()]);
      for (const [name, shape] of sa) {
        // Every channel count doubles, except the 3 input channels of conv1.
        const scaled = shape.map((d, i) => (i === 1 && name === 'conv1.weight' ? d : i < 2 ? 2 * d : d));
        expect(sb.get(name), name).toEqual(scaled);
      }
      expect(a.backbone.featureDim).toBe(arch === 'resnet18' ? 32 : 128);
      expect(b.backbone.featureDim).toBe(arch === 'resnet18' ? 64 : 256);
      expect(sa.get('layer4.0.conv2.weight')![0]).toBe(4 * 8);
      a.store.dispose();
      b.store.dispose();
    });
  }
});

describe('stems and strides (shapes seen by the kernels)', () => {
  async function kernels(enc: EncoderModel, size: number): Promise<Array<{ name: string; inputShapes: number[][]; outputShapes: number[][] }>> {
    const x = tf.randomNormal([2, size, size, 3], 0, 1, 'float32', 2) as tf.Tensor4D;
    const info = await tf.profile(() => enc.backbone.features(x, false));
    const out = info.result as tf.Tensor;
    expect(out.shape).toEqual([2, enc.backbone.featureDim]);
    expect(Array.from(out.dataSync()).every(Number.isFinite)).toBe(true);
    tf.dispose([x, out]);
    return info.kernels;
  }
  /** The input of the last Mean kernel: the global average pool's [N, H, W, C]. */
  const pooledFrom = (ks: Awaited<ReturnType<typeof kernels>>): number[] => ks.filter((k) => k.name === 'Mean').at(-1)!.inputShapes[0]!;

  it('CIFAR stem: 3x3 stride-1 conv, no max-pool; 32 px reaches the pool at 4x4', async () => {
    const enc = buildEncoder(model({ stem: 'cifar' }), 0);
    const ks = await kernels(enc, 32);
    expect(ks.some((k) => k.name === 'MaxPool')).toBe(false);
    const first = ks.find((k) => k.name === 'Conv2D')!;
    expect(first.inputShapes[1]).toEqual([3, 3, 3, 4]);
    expect(first.outputShapes[0]).toEqual([2, 32, 32, 4]);
    expect(pooledFrom(ks)).toEqual([2, 4, 4, 32]);
    enc.store.dispose();
  });

  it('ImageNet stem: 7x7 stride-2 conv then 3x3/2 max-pool; 64 px reaches the pool at 2x2', async () => {
    const enc = buildEncoder(model({ stem: 'imagenet' }), 0);
    const ks = await kernels(enc, 64);
    const first = ks.find((k) => k.name === 'Conv2D')!;
    expect(first.inputShapes[1]).toEqual([7, 7, 3, 4]);
    expect(first.outputShapes[0]).toEqual([2, 32, 32, 4]);
    const pool = ks.filter((k) => k.name === 'MaxPool');
    expect(pool.length).toBe(1);
    expect(pool[0]!.outputShapes[0]).toEqual([2, 16, 16, 4]);
    expect(pooledFrom(ks)).toEqual([2, 2, 2, 32]);
    // A 32 px image also runs (down to 1x1).
    expect(pooledFrom(await kernels(enc, 32))).toEqual([2, 1, 1, 32]);
    enc.store.dispose();
  });

  it('resnet50 strides on the 3x3 conv (v1.5) and the downsample 1x1 only', async () => {
    const enc = buildEncoder(model({ arch: 'resnet50', stem: 'cifar' }), 0);
    const ks = await kernels(enc, 16);
    const convs = ks.filter((k) => k.name === 'Conv2D');
    // 1 stem + 16 blocks * 3 + 4 downsample convs.
    expect(convs.length).toBe(1 + 16 * 3 + 4);
    const strided = convs.filter((k) => k.outputShapes[0]![1]! < k.inputShapes[0]![1]!);
    expect(strided.length).toBe(6);
    expect(strided.filter((k) => k.inputShapes[1]![0] === 3).length).toBe(3);
    expect(strided.filter((k) => k.inputShapes[1]![0] === 1).length).toBe(3); // the downsample.0 convs
    expect(pooledFrom(ks)).toEqual([2, 2, 2, 128]);
    enc.store.dispose();
  });
});

describe('zero-init residual', () => {
  const bnGammas = (store: ParamStore): Array<[string, number[]]> =>
    store
      .list()
      .filter((p) => /(bn\d|downsample\.1)\.weight$/.test(p.name))
      .map((p) => [p.name, Array.from(p.variable.dataSync())]);

  for (const [arch, last] of [
    ['resnet18', 'bn2'],
    ['resnet50', 'bn3'],
  ] as const) {
    it(`${arch}: the last BN gamma of every block (${last}) is 0, every other gamma 1`, () => {
      const enc = buildEncoder(model({ arch, zero_init_residual: true }), 0);
      const gammas = bnGammas(enc.store);
      const zeroed = gammas.filter(([n]) => new RegExp(`layer\\d\\.\\d+\\.${last}\\.weight$`).test(n));
      expect(zeroed.length).toBe(arch === 'resnet18' ? 8 : 16);
      for (const [name, g] of gammas) {
        const expected = zeroed.some(([n]) => n === name) ? 0 : 1;
        expect(g.every((v) => v === expected), name).toBe(true);
      }
      // Betas stay 0 everywhere.
      for (const p of enc.store.list().filter((q) => /(bn\d|downsample\.1)\.bias$/.test(q.name))) {
        expect(Array.from(p.variable.dataSync()).every((v) => v === 0), p.name).toBe(true);
      }
      enc.store.dispose();
    });

    it(`${arch}: every gamma is 1 when zero_init_residual is off`, () => {
      const enc = buildEncoder(model({ arch, zero_init_residual: false }), 0);
      for (const [name, g] of bnGammas(enc.store)) expect(g.every((v) => v === 1), name).toBe(true);
      enc.store.dispose();
    });
  }

  it('with zero-init every residual branch is off at init: features follow the stem and downsample path', () => {
    // Inference mode at init (running mean 0, var 1, beta 0): bn2 outputs 0, so each block gives
    // relu(shortcut). resnet18 then reduces to stem -> downsample 1x1/2 convs of layers 2..4 -> pool.
    const a = buildEncoder(model({ zero_init_residual: true }), 3);
    const b = buildEncoder(model({ zero_init_residual: false }), 3);
    const x = tf.randomNormal([2, 8, 8, 3], 0, 1, 'float32', 4) as tf.Tensor4D;
    const k = 1 / Math.sqrt(1 + 1e-5);
    const w = (name: string): tf.Tensor4D => a.store.get(`backbone.${name}`).variable as unknown as tf.Tensor4D;
    const expected = tf.tidy(() => {
      let y = tf.relu(tf.mul(tf.conv2d(x, w('conv1.weight'), 1, [[0, 0], [1, 1], [1, 1], [0, 0]]), k)) as tf.Tensor4D;
      for (const l of [2, 3, 4]) y = tf.relu(tf.mul(tf.conv2d(y, w(`layer${l}.0.downsample.0.weight`), 2, 'valid'), k)) as tf.Tensor4D;
      return tf.mean(y, [1, 2]);
    });
    const fa = tf.tidy(() => a.backbone.features(x, false));
    const fb = tf.tidy(() => b.backbone.features(x, false));
    const da = fa.dataSync();
    const de = expected.dataSync();
    expect(fa.shape).toEqual(expected.shape);
    for (let i = 0; i < da.length; i++) expect(da[i]).toBeCloseTo(de[i]!, 5);
    // Without zero-init (same seed, same convs) the residual branches contribute.
    let diff = 0;
    const db = fb.dataSync();
    for (let i = 0; i < da.length; i++) diff = Math.max(diff, Math.abs(da[i]! - db[i]!));
    expect(diff).toBeGreaterThan(1e-4);
    tf.dispose([x, fa, fb, expected]);
    a.store.dispose();
    b.store.dispose();
  });
});

describe('BatchNorm modes', () => {
  const stats = (enc: EncoderModel): number[] =>
    enc.store
      .list()
      .filter((p) => p.name.includes('running_'))
      .flatMap((p) => Array.from(p.variable.dataSync()));

  it('inference mode leaves running stats alone and is per-sample; training mode updates them', () => {
    const enc = buildEncoder(model(), 1);
    const x = tf.randomNormal([4, 8, 8, 3], 0, 1, 'float32', 5) as tf.Tensor4D;
    const before = stats(enc);
    const f = tf.tidy(() => enc.backbone.features(x, false));
    expect(stats(enc)).toEqual(before);
    // Inference uses running statistics: a sample's features do not depend on the rest of the batch.
    const f0 = tf.tidy(() => enc.backbone.features(tf.slice(x, [0, 0, 0, 0], [1, 8, 8, 3]) as tf.Tensor4D, false));
    Array.from(f0.dataSync()).forEach((v, i) => expect(v).toBeCloseTo(f.dataSync()[i]!, 5));

    const g = tf.tidy(() => enc.backbone.features(x, true));
    const after = stats(enc);
    expect(after).not.toEqual(before);
    // Training mode normalises with batch statistics: a sub-batch of two gives sample 0 other features.
    const g0 = tf.tidy(() => enc.backbone.features(tf.slice(x, [0, 0, 0, 0], [2, 8, 8, 3]) as tf.Tensor4D, true));
    let diff = 0;
    for (let i = 0; i < 32; i++) diff = Math.max(diff, Math.abs(g0.dataSync()[i]! - g.dataSync()[i]!));
    expect(diff).toBeGreaterThan(1e-4);

    // bn1's update is PyTorch's: running = 0.9 * running + 0.1 * batch, unbiased variance.
    const enc2 = buildEncoder(model(), 1);
    tf.tidy(() => enc2.backbone.features(x, true));
    const w = enc2.store.get('backbone.conv1.weight').variable as unknown as tf.Tensor4D;
    const conv = tf.conv2d(x, w, 1, [[0, 0], [1, 1], [1, 1], [0, 0]]);
    const { mean, variance } = tf.moments(conv, [0, 1, 2]);
    const n = 4 * 8 * 8;
    const rm = enc2.store.get('backbone.bn1.running_mean').variable.dataSync();
    const rv = enc2.store.get('backbone.bn1.running_var').variable.dataSync();
    Array.from(mean.dataSync()).forEach((m, c) => expect(rm[c]).toBeCloseTo(0.1 * m, 5));
    Array.from(variance.dataSync()).forEach((v, c) => expect(rv[c]).toBeCloseTo(0.9 + (0.1 * v * n) / (n - 1), 4));
    tf.dispose([x, f, f0, g, g0, conv, mean, variance]);
    enc.store.dispose();
    enc2.store.dispose();
  });
});

describe('seeded init', () => {
  it('is deterministic for a seed and differs across seeds', () => {
    const values = (enc: EncoderModel): Map<string, Float32Array> =>
      new Map(enc.store.list().map((p) => [p.name, p.variable.dataSync() as Float32Array]));
    const a = buildEncoder(model(), 42);
    const b = buildEncoder(model(), 42);
    const c = buildEncoder(model(), 43);
    const va = values(a);
    const vb = values(b);
    const vc = values(c);
    for (const [name, v] of va) expect(Array.from(vb.get(name)!), name).toEqual(Array.from(v));
    const convs = [...va.keys()].filter((n) => n.endsWith('conv1.weight') || n.endsWith('conv2.weight'));
    expect(convs.length).toBeGreaterThan(0);
    for (const name of convs) expect(Array.from(vc.get(name)!), name).not.toEqual(Array.from(va.get(name)!));
    // Different layers of one model are not copies of one stream either.
    expect(Array.from(va.get('backbone.layer1.0.conv1.weight')!)).not.toEqual(Array.from(va.get('backbone.layer1.0.conv2.weight')!));
    [a, b, c].forEach((e) => e.store.dispose());
  });
});
