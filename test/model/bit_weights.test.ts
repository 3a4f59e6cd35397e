/**
 * BiT weights through loadWeights, the single entry point: official .npz files (generated from the
 * architecture in bit_files.ts), timm resnetv2 safetensors, and simtrip checkpoints of BiT models, into
 * the GroupNorm and BatchNorm variants.
 */
import { useCpuBackend } from '../helpers.js';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ConfigSchema, ModelSchema, type ModelConfig } from '../../src/config/schema.js';
import { tf } from '../../src/engine/tf.js';
import { float16ArrayToFloat32, float32ArrayToFloat16 } from '../../src/io/float16.js';
import { writeSafetensors } from '../../src/io/safetensors.js';
import { buildBackbone, buildEncoder, buildSslModel, type BuildOverrides, type EncoderModel } from '../../src/model/build.js';
import { fromTorchPerm, ParamStore } from '../../src/model/params.js';
import { formatWeightsReport, loadWeights } from '../../src/model/weights.js';
import { saveCheckpoint } from '../../src/train/checkpoint.js';
import { Rng } from '../../src/util/rng.js';
import { expectInputFileError, tempDir } from '../io/tmp.js';
import { bitNpzArrays, npzBytes, randomValues, timmBitArrays, type ArraySpec, type NpzOptions } from './bit_files.js';
import { snapshot, perturb, tinySgd } from './tiny.js';

beforeAll(useCpuBackend);

const bit = (over: Partial<ModelConfig> = {}): ModelConfig => ModelSchema.parse({ arch: 'bit-r50x1', stem: 'imagenet', width: 4, ...over });
const SMALL: BuildOverrides = { bitDepths: [1, 1, 1, 1] };
const ARCH = { depths: [1, 1, 1, 1], width: 4, numClasses: 5 };

/** A BiT .npz of the small architecture with seeded values; returns its path and values. */
function writeNpz(arrays: ArraySpec[] = bitNpzArrays(ARCH), opts: NpzOptions = {}) {
  const values = randomValues(arrays, 1);
  const path = join(tempDir(), 'bit.npz');
  writeFileSync(path, npzBytes(arrays, values, opts));
  return { path, values };
}

/** The small GroupNorm BiT with a classifier (timm's head.fc / BiT's head/conv2d). */
function withClassifier(numClasses: number): ParamStore {
  const store = new ParamStore();
  buildBackbone({ store, rng: new Rng(0, 'init') }, bit(), numClasses, SMALL);
  return store;
}

const value = (enc: EncoderModel, name: string) => enc.store.get(`backbone.${name}`).variable.dataSync() as Float32Array;
const backboneNames = (store: ParamStore) => store.list().map((p) => p.name).filter((n) => n.startsWith('backbone.'));

describe('BiT .npz through loadWeights', () => {
  it('loads every parameter of a GroupNorm model without classifier; the head is ignored (and never read)', async () => {
    // The head members are corrupt: reading them would fail the CRC check.
    const { path, values } = writeNpz(bitNpzArrays(ARCH), { corrupt: ['resnet/head/conv2d/kernel', 'resnet/head/conv2d/bias'] });
    const enc = buildEncoder(bit(), 0, SMALL);
    const before = tf.memory().numTensors;
    const report = await loadWeights(enc.store, path);
    expect(tf.memory().numTensors).toBe(before);
    expect([...report.loaded].sort()).toEqual(backboneNames(enc.store).sort());
    expect(report.missing).toEqual([]);
    expect(report.mismatched).toEqual([]);
    expect([...report.ignored].sort()).toEqual(['resnet/head/conv2d/bias', 'resnet/head/conv2d/kernel']);
    // Kernels are HWIO in both: no transpose.
    expect(value(enc, 'stages.1.blocks.0.conv2.weight')).toEqual(values.get('resnet/block2/unit01/b/standardized_conv2d/kernel'));
    expect(value(enc, 'stages.3.blocks.0.downsample.conv.weight')).toEqual(values.get('resnet/block4/unit01/a/proj/standardized_conv2d/kernel'));
    expect(value(enc, 'stages.0.blocks.0.norm3.bias')).toEqual(values.get('resnet/block1/unit01/c/group_norm/beta'));
    expect(value(enc, 'norm.weight')).toEqual(values.get('resnet/group_norm/gamma'));
    expect(formatWeightsReport(report)).toMatch(/^loaded \d+ tensors from .*\n {2}ignored from file \(2\): resnet\/head\/conv2d\/kernel, resnet\/head\/conv2d\/bias$/);
    enc.store.dispose();

    // A model with a classifier needs the head and reads it: the corruption surfaces.
    const withHead = withClassifier(5);
    await expectInputFileError(loadWeights(withHead, path), path, /member 'resnet\/head\/conv2d\/kernel\.npy': CRC-32 mismatch/);
    withHead.dispose();
  });

  it('reads deflated members and float16 arrays', async () => {
    const { path, values } = writeNpz(bitNpzArrays(ARCH), { method: 8, dtype: 'f2' });
    const enc = buildEncoder(bit(), 0, SMALL);
    await loadWeights(enc.store, path);
    const key = 'resnet/block3/unit01/a/standardized_conv2d/kernel';
    expect(value(enc, 'stages.2.blocks.0.conv1.weight')).toEqual(float16ArrayToFloat32(float32ArrayToFloat16(values.get(key)!)));
    enc.store.dispose();
  });

  it("model.norm 'batch': only the conv kernels load; norms stay fresh with norm3 gamma 0", async () => {
    const { path, values } = writeNpz();
    const enc = buildEncoder(bit({ norm: 'batch' }), 0, SMALL);
    const report = await loadWeights(enc.store, path);
    const convs = backboneNames(enc.store).filter((n) => /conv\d?\.weight$/.test(n));
    expect([...report.loaded].sort()).toEqual(convs.sort());
    expect([...report.missing].sort()).toEqual(backboneNames(enc.store).filter((n) => !convs.includes(n)).sort());
    expect(report.ignored.filter((k) => k.includes('group_norm'))).toHaveLength(2 * (3 * 4 + 1));
    expect(value(enc, 'stem.conv.weight')).toEqual(values.get('resnet/root_block/standardized_conv2d/kernel'));
    expect([...value(enc, 'stages.1.blocks.0.norm3.weight')].every((v) => v === 0)).toBe(true);
    expect([...value(enc, 'stages.1.blocks.0.norm1.weight')].every((v) => v === 1)).toBe(true);
    expect([...value(enc, 'norm.running_var')].every((v) => v === 1)).toBe(true);
    expect(formatWeightsReport(report)).toMatch(/newly initialised \(52\): backbone: backbone\.stages\.0\.blocks\.0\.norm1\.weight, backbone\.stages\.0\.blocks\.0\.norm1\.bias/);
    enc.store.dispose();
  });

  it('a CIFAR stem stays new (the file root is 7x7); everything else loads', async () => {
    const { path } = writeNpz();
    const enc = buildEncoder(bit({ stem: 'cifar' }), 0, SMALL);
    const stem = [...value(enc, 'stem.conv.weight')];
    const report = await loadWeights(enc.store, path);
    expect(report.missing).toEqual(['backbone.stem.conv.weight']);
    expect(report.ignored).toContain('resnet/root_block/standardized_conv2d/kernel');
    expect([...value(enc, 'stem.conv.weight')]).toEqual(stem);
    enc.store.dispose();
  });

  it('a partial file fails listing the missing keys, and assigns nothing', async () => {
    const arrays = bitNpzArrays(ARCH).filter((a) => !a.name.startsWith('resnet/block2/unit01/b/'));
    const { path } = writeNpz(arrays);
    const enc = buildEncoder(bit(), 0, SMALL);
    const before = snapshot(enc.store);
    const e = await expectInputFileError(loadWeights(enc.store, path), path, /missing 3 parameter\(s\)/);
    expect(e.reason).toContain('backbone.stages.1.blocks.0.conv2.weight (resnet/block2/unit01/b/standardized_conv2d/kernel)');
    expect(e.reason).toContain('backbone.stages.1.blocks.0.norm2.weight (resnet/block2/unit01/b/group_norm/gamma)');
    const after = snapshot(enc.store);
    for (const [name, v] of before) expect(after.get(name), name).toEqual(v);
    enc.store.dispose();
  });

  it('a file of another model fails with the mismatches and what the file holds', async () => {
    const { path } = writeNpz(bitNpzArrays({ depths: [3, 4, 6, 3], width: 8 }));
    const enc = buildEncoder(bit(), 0);
    const e = await expectInputFileError(loadWeights(enc.store, path), path, /shape mismatch\(es\): resnet\/root_block\/standardized_conv2d\/kernel: file \[7, 7, 3, 8\], model backbone\.stem\.conv\.weight \[7, 7, 3, 4\]/);
    expect(e.reason).toContain('the file holds BiT ResNet-v2 R50x1 (depths 3,4,6,3, width factor 1, root width 8, no head) (model.arch: bit-r50x1, model.stem: imagenet, model.width: 8)');
    enc.store.dispose();
  });

  it('into a non-BiT model: a clear error naming model.arch and the arch the file needs', async () => {
    const { path } = writeNpz(bitNpzArrays({ depths: [3, 4, 23, 3], width: 4, numClasses: 3 }));
    const enc = buildEncoder(ModelSchema.parse({ arch: 'resnet18', width: 4 }), 0);
    await expectInputFileError(
      loadWeights(enc.store, path, { arch: 'resnet18' }),
      path,
      /need a BiT model, not model\.arch resnet18; the file holds BiT ResNet-v2 R101x1 .*set model\.arch: bit-r101x1/,
    );
    enc.store.dispose();
  });

  it('a zip without BiT arrays is rejected as such', async () => {
    const { path } = writeNpz([{ name: 'weights', shape: [2] }]);
    const enc = buildEncoder(bit(), 0, SMALL);
    await expectInputFileError(loadWeights(enc.store, path), path, /not a BiT checkpoint: no 'resnet\/\.\.\.' arrays \(holds weights\)/);
    enc.store.dispose();
  });
});

/** A timm state dict (PyTorch layout) with seeded values. */
async function writeTimm(batchNorm: boolean, prefix = '') {
  const arrays = timmBitArrays(ARCH, batchNorm);
  const values = randomValues(arrays, 2);
  const path = join(tempDir(), 'timm.safetensors');
  await writeSafetensors(
    path,
    arrays.map((a) => ({ name: prefix + a.name, dtype: 'F32' as const, shape: a.shape, data: values.get(a.name)! })),
  );
  return { path, values };
}

/** A file tensor (PyTorch layout, shape from the architecture) in the model's tfjs layout. */
function toModelLayout(values: Map<string, Float32Array>, name: string, layout: 'conv' | 'linear'): Float32Array {
  const shape = timmBitArrays(ARCH).find((a) => a.name === name)!.shape;
  return tf.tidy(() => {
    // timm's head is a 1x1 conv; as a linear weight it is [K, C].
    const t = tf.tensor(values.get(name)!, layout === 'linear' ? shape.slice(0, 2) : shape);
    return tf.transpose(t, fromTorchPerm(layout, t.rank)!).dataSync() as Float32Array;
  });
}

describe('timm resnetv2_*_bit safetensors through loadWeights', () => {
  it('load into the GroupNorm model by name: OIHW kernels, and the 1x1 conv head as the linear classifier', async () => {
    const { path, values } = await writeTimm(false, 'module.');
    const store = withClassifier(5);
    const report = await loadWeights(store, path);
    expect(report.mismatched).toEqual([]);
    expect([...report.loaded].sort()).toEqual(backboneNames(store).sort());
    const get = (n: string) => store.get(`backbone.${n}`).variable.dataSync() as Float32Array;
    expect(get('stages.2.blocks.0.conv2.weight')).toEqual(toModelLayout(values, 'stages.2.blocks.0.conv2.weight', 'conv'));
    // head.fc.weight [K, C, 1, 1] -> linear [C, K].
    expect(get('head.fc.weight')).toEqual(toModelLayout(values, 'head.fc.weight', 'linear'));
    expect(get('head.fc.bias')).toEqual(values.get('head.fc.bias'));
    expect(get('norm.bias')).toEqual(values.get('norm.bias'));
    store.dispose();
  });

  it('into the BatchNorm model: GroupNorm gamma/beta (no running statistics in the file) are ignored', async () => {
    const { path } = await writeTimm(false);
    const enc = buildEncoder(bit({ norm: 'batch' }), 0, SMALL);
    const report = await loadWeights(enc.store, path);
    expect(report.loaded.every((n) => /conv\d?\.weight$/.test(n))).toBe(true);
    expect(report.loaded).toHaveLength(backboneNames(enc.store).filter((n) => /conv\d?\.weight$/.test(n)).length);
    expect(report.ignored).toContain('stages.0.blocks.0.norm3.weight');
    expect([...value(enc, 'stages.0.blocks.0.norm3.weight')].every((v) => v === 0)).toBe(true);
    enc.store.dispose();

    // A BatchNorm state dict (running statistics present) loads its norms too.
    const bn = await writeTimm(true);
    const enc2 = buildEncoder(bit({ norm: 'batch' }), 0, SMALL);
    const report2 = await loadWeights(enc2.store, bn.path);
    expect(report2.missing).toEqual([]);
    expect(value(enc2, 'stages.0.blocks.0.norm3.running_var')).toEqual(bn.values.get('stages.0.blocks.0.norm3.running_var'));
    enc2.store.dispose();
  });
});

describe('timm resnetv2 names elsewhere', () => {
  it('are recognised when they do not fit the model', async () => {
    const { path } = await writeTimm(false);
    const enc = buildEncoder(ModelSchema.parse({ arch: 'resnet18', width: 4 }), 0);
    await expectInputFileError(loadWeights(enc.store, path), path, /no tensor matches the model's backbone; the file looks like a timm ResNet-v2 \(resnetv2_\*_bit names; model\.arch bit-\*\)/);
    enc.store.dispose();
  });
});

describe('simtrip checkpoints of BiT models', () => {
  it('round-trip the BatchNorm variant, running statistics included', async () => {
    const config = ConfigSchema.parse({
      model: { arch: 'bit-r50x1', stem: 'cifar', width: 4, norm: 'batch' },
      method: { proj_dim: 16, proj_hidden: 16, proj_layers: 2, pred_hidden: 8 },
    });
    const src = buildSslModel(config.model, config.method, 1);
    const sgd = tinySgd(src.store);
    perturb(src.store, sgd, 3);
    sgd.dispose();
    const runDir = tempDir();
    await saveCheckpoint(runDir, { store: src.store, state: { epoch: 1, step: 2, config, normalization: 'bit', engine: 'cpu' } });
    const dst = buildSslModel(config.model, config.method, 2);
    const report = await loadWeights(dst.store, runDir);
    expect(report.missing).toEqual([]);
    const a = snapshot(src.store);
    const b = snapshot(dst.store);
    for (const [name, v] of a) expect(b.get(name), name).toEqual(v);
    src.store.dispose();
    dst.store.dispose();
  });
});
