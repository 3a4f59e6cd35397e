import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { tf } from '../../src/engine/tf.js';
import { float32ArrayToBfloat16, float32ArrayToFloat16, bfloat16ArrayToFloat32, float16ArrayToFloat32 } from '../../src/io/float16.js';
import { writeSafetensors, type SafetensorsDType, type TensorToWrite } from '../../src/io/safetensors.js';
import { toTorchPerm, type ParamStore } from '../../src/model/params.js';
import { formatWeightsReport, loadWeights } from '../../src/model/weights.js';
import { saveCheckpoint } from '../../src/train/checkpoint.js';
import { UserError } from '../../src/util/errors.js';
import { useCpuBackend } from '../helpers.js';
import { expectInputFileError, tempDir } from '../io/tmp.js';
import { perturb, snapshot, tinyConfig, tinyModel, tinySgd } from './tiny.js';

beforeAll(useCpuBackend);

/**
 * A state dict of `store`'s backbone in PyTorch layout, renamed the way another project would name
 * it: "backbone." replaced by `prefix`, with num_batches_tracked counters and a classifier added.
 */
function backboneStateDict(store: ParamStore, prefix: string, dtype: SafetensorsDType = 'F32'): TensorToWrite[] {
  const out: TensorToWrite[] = [];
  for (const p of store.list()) {
    if (!p.name.startsWith('backbone.')) continue;
    const name = prefix + p.name.slice('backbone.'.length);
    const perm = toTorchPerm(p.layout, p.variable.rank);
    const t = perm ? tf.transpose(p.variable, perm) : p.variable;
    out.push({ name, dtype, shape: t.shape, data: t.dataSync() as Float32Array });
    if (t !== p.variable) t.dispose();
    if (name.endsWith('.running_var')) {
      out.push({
        name: name.replace('running_var', 'num_batches_tracked'),
        dtype: 'I64',
        shape: [],
        data: new BigInt64Array([123n]),
      });
    }
  }
  out.push({ name: `${prefix}fc.weight`, dtype, shape: [10, 32], data: new Float32Array(320).fill(0.5) });
  out.push({ name: `${prefix}fc.bias`, dtype, shape: [10], data: new Float32Array(10) });
  return out;
}

const backboneNames = (store: ParamStore) => store.list().map((p) => p.name).filter((n) => n.startsWith('backbone.'));
const headNames = (store: ParamStore) => store.list().map((p) => p.name).filter((n) => !n.startsWith('backbone.'));

function expectBackboneEqual(a: ParamStore, b: ParamStore, round: (x: Float32Array) => Float32Array = (x) => x): void {
  const sa = snapshot(a);
  const sb = snapshot(b);
  for (const name of backboneNames(a)) expect(sb.get(name), name).toEqual(round(sa.get(name)!));
}

async function sourceModel() {
  const config = tinyConfig();
  const src = tinyModel(1, config);
  const sgd = tinySgd(src.store);
  perturb(src.store, sgd, 11);
  sgd.dispose();
  return { src, config };
}

describe('loadWeights', () => {
  it('loads a torchvision-named backbone file; heads stay new, fc and counters are ignored', async () => {
    const { src, config } = await sourceModel();
    const path = join(tempDir(), 'tv.safetensors');
    await writeSafetensors(path, backboneStateDict(src.store, ''));
    const dst = tinyModel(2, config);
    const headsBefore = snapshot(dst.store);

    const before = tf.memory().numTensors;
    const report = await loadWeights(dst.store, path);
    expect(tf.memory().numTensors).toBe(before);

    expect([...report.loaded].sort()).toEqual(backboneNames(dst.store).sort());
    expect([...report.missing].sort()).toEqual(headNames(dst.store).sort());
    expect(report.ignored).toEqual(expect.arrayContaining(['fc.weight', 'fc.bias', 'layer1.0.bn1.num_batches_tracked']));
    expect(report.ignored.filter((k) => !k.endsWith('num_batches_tracked')).sort()).toEqual(['fc.bias', 'fc.weight']);
    expect(report.mismatched).toEqual([]);
    expectBackboneEqual(src.store, dst.store);
    const after = snapshot(dst.store);
    for (const name of headNames(dst.store)) expect(after.get(name)).toEqual(headsBefore.get(name));

    const text = formatWeightsReport(report);
    expect(text).toContain(`loaded ${report.loaded.length} tensors from ${path}`);
    expect(text).toMatch(/newly initialised \(\d+\): projector\.\* \(\d+\), predictor\.\* \(\d+\)$/m);
    expect(text).toMatch(/ignored from file \(\d+\): fc\.weight, fc\.bias \+\d+ optimizer\/num_batches_tracked/);
    src.store.dispose();
    dst.store.dispose();
  });

  it.each(['module.encoder.', 'module.', 'backbone.', 'encoder.', 'module.encoder_q.'])(
    'strips the %s prefix of released SSL checkpoints',
    async (prefix) => {
      const { src, config } = await sourceModel();
      const path = join(tempDir(), 'ssl.safetensors');
      const tensors = backboneStateDict(src.store, prefix);
      // Official SimSiam keeps its predictor beside the encoder; it must not break the load.
      tensors.push({ name: 'module.predictor.0.weight', dtype: 'F32', shape: [2, 2], data: new Float32Array(4) });
      await writeSafetensors(path, tensors);
      const dst = tinyModel(2, config);
      const report = await loadWeights(dst.store, path);
      expect([...report.loaded].sort()).toEqual(backboneNames(dst.store).sort());
      expect(report.ignored).toContain('module.predictor.0.weight');
      expectBackboneEqual(src.store, dst.store);
      src.store.dispose();
      dst.store.dispose();
    },
  );

  it.each([
    ['F16', (x: Float32Array) => float16ArrayToFloat32(float32ArrayToFloat16(x))],
    ['BF16', (x: Float32Array) => bfloat16ArrayToFloat32(float32ArrayToBfloat16(x))],
  ] as const)('loads %s files', async (dtype, round) => {
    const { src, config } = await sourceModel();
    const path = join(tempDir(), `${dtype}.safetensors`);
    await writeSafetensors(path, backboneStateDict(src.store, '', dtype));
    const dst = tinyModel(2, config);
    const report = await loadWeights(dst.store, path);
    expect(report.loaded).toHaveLength(backboneNames(dst.store).length);
    expectBackboneEqual(src.store, dst.store, round);
    src.store.dispose();
    dst.store.dispose();
  });

  it('loads a simtrip checkpoint, heads included, and ignores its optimizer state', async () => {
    const { src, config } = await sourceModel();
    const runDir = tempDir();
    const sgd = tinySgd(src.store);
    perturb(src.store, sgd, 5);
    await saveCheckpoint(runDir, {
      store: src.store,
      optimizer: sgd,
      state: { epoch: 1, step: 1, config, normalization: 'imagenet', engine: 'cpu' },
    });
    const dst = tinyModel(2, config);
    // A run directory works as well as the file.
    const report = await loadWeights(dst.store, runDir);
    expect(report.path).toBe(join(runDir, 'checkpoints', 'last.safetensors'));
    expect(report.missing).toEqual([]);
    expect(report.loaded).toHaveLength(src.store.list().length);
    expect(report.ignored.every((k) => k.startsWith('optimizer.momentum.'))).toBe(true);
    expect(report.ignored).toHaveLength(sgd.buffers.size);
    const a = snapshot(src.store);
    const b = snapshot(dst.store);
    for (const [name, v] of a) expect(b.get(name), name).toEqual(v);
    sgd.dispose();
    src.store.dispose();
    dst.store.dispose();
  });

  it('fails on shape mismatches, naming both shapes, and leaves the model untouched', async () => {
    const { src } = await sourceModel();
    const path = join(tempDir(), 'w4.safetensors');
    await writeSafetensors(path, backboneStateDict(src.store, 'module.encoder.'));
    const wide = tinyModel(2, tinyConfig({ width: 8 }));
    const before = snapshot(wide.store);
    const e = await expectInputFileError(loadWeights(wide.store, path, { arch: 'resnet18' }), path, /shape mismatch/);
    expect(e.reason).toContain('backbone.conv1.weight (file [4, 3, 3, 3], model [8, 3, 3, 3])');
    expect(e.reason).toContain('resnet18');
    expect(e.reason).toMatch(/basic blocks .*behind prefix 'module\.encoder\.'/);
    const after = snapshot(wide.store);
    for (const [name, v] of before) expect(after.get(name)).toEqual(v);
    wide.store.dispose();
    src.store.dispose();
  });

  it('can skip mismatched tensors when asked', async () => {
    const { src, config } = await sourceModel();
    const tensors = backboneStateDict(src.store, '');
    const i = tensors.findIndex((t) => t.name === 'layer4.0.conv2.weight');
    tensors[i] = { name: 'layer4.0.conv2.weight', dtype: 'F32', shape: [1, 1, 1, 1], data: new Float32Array(1) };
    const path = join(tempDir(), 'partial.safetensors');
    await writeSafetensors(path, tensors);
    const dst = tinyModel(2, config);
    const report = await loadWeights(dst.store, path, { skipMismatched: true });
    expect(report.mismatched).toEqual([{ name: 'backbone.layer4.0.conv2.weight', file: [1, 1, 1, 1], model: [32, 32, 3, 3] }]);
    expect(report.missing).toContain('backbone.layer4.0.conv2.weight');
    const text = formatWeightsReport(report);
    expect(text).toContain('shape mismatch, left new (1)');
    expect(text).toContain('backbone: backbone.layer4.0.conv2.weight');
    src.store.dispose();
    dst.store.dispose();
  });

  it('refuses files that match nothing in the backbone and says what they look like', async () => {
    const dir = tempDir();
    const path = join(dir, 'vit.safetensors');
    const t = (name: string): TensorToWrite => ({ name, dtype: 'F32', shape: [2], data: new Float32Array(2) });
    await writeSafetensors(path, [t('patch_embed.proj.weight'), t('blocks.0.attn.qkv.weight'), t('head.weight')]);
    const m = tinyModel(2, tinyConfig());
    await expectInputFileError(
      loadWeights(m.store, path, { arch: 'resnet18' }),
      path,
      /no tensor matches the model's backbone \(resnet18\); the file looks like a vision transformer \(keys like .*patch_embed/,
    );
    // Only heads matching is still "nothing matched the backbone".
    const heads = join(dir, 'heads.safetensors');
    await writeSafetensors(heads, [{ name: 'predictor.3.bias', dtype: 'F32', shape: [16], data: new Float32Array(16) }]);
    await expectInputFileError(loadWeights(m.store, heads), heads, /no tensor matches the model's backbone/);
    m.store.dispose();
  });

  it('gives clear errors for BiT .npz, files that are not torch checkpoints, unknown formats and missing files', async () => {
    const dir = tempDir();
    const m = tinyModel(2, tinyConfig());
    const npz = join(dir, 'bit.npz');
    writeFileSync(npz, 'PK');
    const e = await expectInputFileError(loadWeights(m.store, npz), npz, /not a zip archive/);
    expect(e).toBeInstanceOf(UserError);
    const pth = join(dir, 'r50.pth');
    writeFileSync(pth, 'x');
    await expectInputFileError(loadWeights(m.store, pth), pth, /not a PyTorch checkpoint/);
    const h5 = join(dir, 'w.h5');
    writeFileSync(h5, 'x');
    await expectInputFileError(loadWeights(m.store, h5), h5, /unsupported weights format '\.h5'/);
    const missing = join(dir, 'nope.safetensors');
    await expectInputFileError(loadWeights(m.store, missing), missing, /no such file/);
    const corrupt = join(dir, 'corrupt.safetensors');
    writeFileSync(corrupt, Buffer.alloc(3));
    await expectInputFileError(loadWeights(m.store, corrupt), corrupt, /too short/);
    m.store.dispose();
  });
});
