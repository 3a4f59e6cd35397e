/**
 * `simtrip weights inspect`: format, counts, sizes, dtypes and the detected architecture from headers
 * alone. The large cases are sparse files (headers written, data left as holes): reading their data
 * would take seconds and fail the zip CRC checks, so passing quickly shows nothing but headers is read.
 */
import { useCpuBackend } from '../helpers.js';
import { closeSync, openSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ConfigSchema, ModelSchema } from '../../src/config/schema.js';
import { writeSafetensors, type TensorToWrite } from '../../src/io/safetensors.js';
import { buildEncoder, buildSslModel } from '../../src/model/build.js';
import { formatWeightsSummary, humanBytes, inspectWeights } from '../../src/model/inspect.js';
import { checkpointTensors, saveCheckpoint } from '../../src/train/checkpoint.js';
import { expectInputFileError, tempDir } from '../io/tmp.js';
import { buildZip } from '../io/zip-builder.js';
import { bitNpzArrays, npzBytes, randomValues, timmBitArrays, writeSparseNpz, type ArraySpec } from './bit_files.js';

beforeAll(useCpuBackend);

const elements = (a: ArraySpec) => a.shape.reduce((n, d) => n * d, 1);

async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const t = performance.now();
  const value = await fn();
  return { value, ms: performance.now() - t };
}

describe('BiT .npz', () => {
  it.each([
    ['BiT-M-R50x1', { depths: [3, 4, 6, 3], numClasses: 21843 }, 'BiT ResNet-v2 R50x1 (depths 3,4,6,3, width factor 1, head 21843 classes)', 'bit-r50x1'],
    ['BiT-S-R152x2', { depths: [3, 8, 36, 3], widthFactor: 2, numClasses: 1000 }, 'BiT ResNet-v2 R152x2 (depths 3,8,36,3, width factor 2, head 1000 classes)', 'bit-r152x2'],
  ])('%s (sparse, full size) is described from its headers at once', async (name, arch, text, configArch) => {
    const arrays = bitNpzArrays(arch);
    const path = join(tempDir(), `${name}.npz`);
    const fileBytes = writeSparseNpz(path, arrays);
    const { value: s, ms } = await timed(() => inspectWeights(path));
    expect(ms).toBeLessThan(3000);
    expect(s).toMatchObject({ path, format: 'BiT npz', fileBytes, tensors: arrays.length, dtypes: { float32: arrays.length }, architecture: text });
    expect(s.dataBytes).toBe(4 * arrays.reduce((n, a) => n + elements(a), 0));
    expect(s.usage).toEqual([`model.arch: ${configArch}`, 'model.stem: imagenet', `model.weights: ${path}`]);
  });

  it('deflated float16 members of a narrow model: dtypes, root width and the model.width line', async () => {
    const arrays = bitNpzArrays({ depths: [3, 4, 6, 3], width: 4 });
    const path = join(tempDir(), 'tiny.npz');
    writeFileSync(path, npzBytes(arrays, randomValues(arrays, 1), { method: 8, dtype: 'f2' }));
    const s = await inspectWeights(path);
    expect(s.dtypes).toEqual({ float16: arrays.length });
    expect(s.dataBytes).toBe(2 * arrays.reduce((n, a) => n + elements(a), 0));
    expect(s.fileBytes).toBe(statSync(path).size);
    expect(s.architecture).toBe('BiT ResNet-v2 R50x1 (depths 3,4,6,3, width factor 1, root width 4, no head)');
    expect(s.usage).toEqual(['model.arch: bit-r50x1', 'model.stem: imagenet', 'model.width: 4', `model.weights: ${path}`]);
  });

  it('other npz files and unknown layouts say why they cannot be used', async () => {
    const dir = tempDir();
    const other = join(dir, 'other.npz');
    writeFileSync(other, npzBytes([{ name: 'embedding', shape: [3, 2] }], randomValues([{ name: 'embedding', shape: [3, 2] }], 1)));
    const s = await inspectWeights(other);
    expect(s.format).toBe('npz');
    expect(s.usage).toEqual([]);
    expect(formatWeightsSummary(s)).toMatch(/^use with {5}simtrip reads \.npz files only as official BiT checkpoints$/m);
    const units = bitNpzArrays({ depths: [1, 1, 1, 1] });
    const custom = join(dir, 'custom.npz');
    writeSparseNpz(custom, units);
    expect((await inspectWeights(custom)).note).toBe('no model.arch has depths 1,1,1,1 with width factor 1');
  });
});

describe('safetensors', () => {
  it('timm resnetv2_*_bit names behind a prefix', async () => {
    const arrays = timmBitArrays({ depths: [3, 4, 6, 3], width: 4, numClasses: 10 });
    const path = join(tempDir(), 'timm.safetensors');
    await writeSafetensors(path, arrays.map((a) => ({ name: `module.${a.name}`, dtype: 'F16' as const, shape: a.shape, data: new Float32Array(elements(a)) })));
    const s = await inspectWeights(path);
    expect(s).toMatchObject({ format: 'safetensors', tensors: arrays.length, dtypes: { F16: arrays.length } });
    expect(s.architecture).toBe(
      "timm resnetv2 (BiT names): BiT ResNet-v2 R50x1 (depths 3,4,6,3, width factor 1, root width 4, head 10 classes) behind prefix 'module.' (stripped when loading)",
    );
    expect(s.usage).toEqual(['model.arch: bit-r50x1', 'model.stem: imagenet', 'model.width: 4', `model.weights: ${path}`]);
  });

  it('a torchvision resnet50 state dict (with int64 counters)', async () => {
    const enc = buildEncoder(ModelSchema.parse({ arch: 'resnet50', stem: 'imagenet', width: 8 }), 0);
    const tensors: TensorToWrite[] = (await checkpointTensors(enc.store)).map((t) => ({ ...t, name: t.name.replace(/^backbone\./, '') }));
    enc.store.dispose();
    const counters = tensors.filter((t) => t.name.endsWith('running_var')).map((t) => t.name.replace('running_var', 'num_batches_tracked'));
    tensors.push(...counters.map((name) => ({ name, dtype: 'I64' as const, shape: [], data: new BigInt64Array([1n]) })));
    tensors.push({ name: 'fc.weight', dtype: 'F32', shape: [1000, 256], data: new Float32Array(256000) });
    const path = join(tempDir(), 'r50.safetensors');
    await writeSafetensors(path, tensors);
    const s = await inspectWeights(path);
    expect(s.dtypes).toEqual({ F32: tensors.length - counters.length, I64: counters.length });
    expect(s.architecture).toBe('torchvision resnet50 (bottleneck blocks 3,4,6,3, width 8, 7x7 stem, fc 1000 classes)');
    expect(s.usage).toEqual(['model.arch: resnet50', 'model.stem: imagenet', 'model.width: 8', `model.weights: ${path}`]);
  });

  it('a sparse 3 GB file is described from its header at once', async () => {
    const path = join(tempDir(), 'huge.safetensors');
    const n = 3 * 2 ** 30;
    const header = Buffer.from(JSON.stringify({ 'patch_embed.proj.weight': { dtype: 'BF16', shape: [n / 2], data_offsets: [0, n] } }));
    const fd = openSync(path, 'w');
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(header.length));
    writeSync(fd, Buffer.concat([len, header]), 0, 8 + header.length, 0);
    writeSync(fd, Buffer.alloc(1), 0, 1, 8 + header.length + n - 1);
    closeSync(fd);
    const { value: s, ms } = await timed(() => inspectWeights(path));
    expect(ms).toBeLessThan(1000);
    expect(s).toMatchObject({ tensors: 1, dataBytes: n, dtypes: { BF16: 1 }, usage: [], note: 'no simtrip model.arch matches this file' });
    expect(s.architecture).toMatch(/^a vision transformer/);
    expect(formatWeightsSummary(s)).toContain('size         3,221,225,472 bytes (3.0 GiB) of tensor data');
  });

  it('a simtrip checkpoint names its model, method and epoch', async () => {
    const config = ConfigSchema.parse({
      model: { arch: 'bit-r50x1', stem: 'cifar', width: 4, norm: 'batch' },
      method: { proj_dim: 16, proj_hidden: 16, proj_layers: 2, pred_hidden: 8 },
    });
    const m = buildSslModel(config.model, config.method, 0);
    const runDir = tempDir();
    const path = await saveCheckpoint(runDir, { store: m.store, state: { epoch: 12, step: 96, config, normalization: 'bit', engine: 'cpu' } });
    m.store.dispose();
    const s = await inspectWeights(runDir);
    expect(s.path).toBe(path);
    expect(s.format).toBe('simtrip checkpoint');
    expect(s.architecture).toBe('simtrip checkpoint: bit-r50x1 + simsiam, epoch 12 (step 96, bit input scaling)');
    expect(s.usage).toContain('model.norm: batch');
    const text = formatWeightsSummary(s);
    expect(text).toMatch(/^format {7}simtrip checkpoint \(safetensors\)$/m);
    expect(text).toMatch(/^use with {5}--checkpoint /m);
  });
});

describe('errors and formatting', () => {
  it('unsupported or missing files', async () => {
    const dir = tempDir();
    const h5 = join(dir, 'w.h5');
    writeFileSync(h5, 'x');
    await expectInputFileError(inspectWeights(h5), h5, /unsupported weights format '\.h5'/);
    await expectInputFileError(inspectWeights(join(dir, 'nope.npz')), join(dir, 'nope.npz'), /no such file/);
    const bad = join(dir, 'bad.npz');
    writeFileSync(bad, 'PK not really');
    await expectInputFileError(inspectWeights(bad), bad, /zip/);
  });

  it('sizes in bytes and binary units', () => {
    expect(humanBytes(512)).toBe('512 bytes');
    expect(humanBytes(94_371_840)).toBe('94,371,840 bytes (90.0 MiB)');
  });
});

describe('PyTorch checkpoints', () => {
  /** A zip-format torch.save file by hand: {'state_dict': {'w': tensor [1]}, 'deep': a list nested `depth` deep}. */
  function deepCheckpoint(depth: number): Buffer {
    const str = (s: string) => Buffer.concat([Buffer.from('X'), Buffer.from(new Uint32Array([s.length]).buffer), Buffer.from(s)]);
    const op = (s: string) => Buffer.from(s, 'latin1');
    const tensor = Buffer.concat([
      op('ctorch._utils\n_rebuild_tensor_v2\n(('), str('storage'), op('ctorch\nFloatStorage\n'), str('0'), str('cpu'), op('K\x01tQ'),
      op('K\x00K\x01\x85K\x01\x85\x89ccollections\nOrderedDict\n)RtR'),
    ]);
    const pickle = Buffer.concat([
      op('\x80\x02}('), str('state_dict'), op('}'), str('w'), tensor, op('s'),
      str('deep'), op(']'.repeat(depth) + 'a'.repeat(depth - 1)), op('u.'),
    ]);
    return Buffer.from(buildZip([{ name: 'deep/data.pkl', data: pickle }, { name: 'deep/data/0', data: new Uint8Array(new Float32Array([2.5]).buffer) }]));
  }

  it('a pickle nested far deeper than the JS stack is inspected, not overflowed', async () => {
    const path = join(tempDir(), 'deep.pth');
    writeFileSync(path, deepCheckpoint(200_000));
    const s = await inspectWeights(path);
    expect(s).toMatchObject({ format: 'PyTorch zip', tensors: 1, dtypes: { float32: 1 }, dataBytes: 4 });
  });
});
