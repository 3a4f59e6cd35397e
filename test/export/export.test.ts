/**
 * `simtrip export`: the ONNX model runs in onnxruntime-node and gives `simtrip embed`'s features; the
 * torchvision/timm state dicts hold the backbone alone under the model's own names (with the
 * BatchNorm counters PyTorch's strict loading wants) and round-trip into simtrip exactly. Loading the
 * state dicts strictly in real torch and onnx.checker are checked by test/fixtures/torch/generate.py.
 */
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ModelSchema, type Config } from '../../src/config/schema.js';
import type { Normalization } from '../../src/data/augment.js';
import { tf } from '../../src/engine/tf.js';
import { stateDictTarget, timmBitName } from '../../src/export/state_dict_export.js';
import { listImages } from '../../src/io/image.js';
import { readNpy } from '../../src/io/npy.js';
import { readSafetensors } from '../../src/io/safetensors.js';
import { buildEncoder } from '../../src/model/build.js';
import { loadWeights } from '../../src/model/weights.js';
import { resetExitCodeAfterEach, runCli } from '../cli/run_cli.js';
import { relativeError, useCpuBackend } from '../helpers.js';
import { fixture, tempDir } from '../io/tmp.js';
import { torchFixture } from '../io/torch_fixtures.js';
import { writeCheckpoint } from '../eval/probe_run.js';
import { runOnnx, preprocess } from './onnx_run.js';

beforeAll(useCpuBackend);
resetExitCodeAfterEach();

/** A run with one checkpoint of a trained-looking encoder (random weights and running statistics). */
async function run(model: Record<string, unknown>, imageSize: number, normalization: Normalization): Promise<{ dir: string; cfg: Config; yaml: string }> {
  const dir = tempDir();
  const cfg = await writeCheckpoint(dir, model, { image_size: imageSize }, normalization, 13);
  const yaml = join(dir, 'config.yaml');
  writeFileSync(yaml, `model: ${JSON.stringify(model)}\ndata: {image_size: ${imageSize}}\n`);
  return { dir, cfg, yaml };
}

/** A folder with the golden fixture's 32x32 images and a larger non-square one (so resize and crop run). */
async function images(): Promise<string> {
  const dir = join(tempDir(), 'images');
  mkdirSync(dir);
  for (const f of ['img00.png', 'img01.png', 'img02.png']) copyFileSync(fixture('resnet-basic1111-f16', 'images', f), join(dir, f));
  const sharp = (await import('sharp')).default;
  const pixels = Buffer.from(Uint8Array.from({ length: 40 * 56 * 3 }, (_, i) => (i * 97 + 13) % 251));
  await sharp(pixels, { raw: { width: 56, height: 40, channels: 3 } }).png().toFile(join(dir, 'wide.png'));
  return dir;
}

describe('simtrip export --format onnx', () => {
  it.each([
    ['resnet18, CIFAR stem', { arch: 'resnet18', stem: 'cifar', width: 4 }, 32, 'imagenet'],
    ['BiT GroupNorm, BiT root', { arch: 'bit-r50x1', stem: 'imagenet', width: 2 }, 40, 'bit'],
  ] as const)('%s: onnxruntime on the exported file gives simtrip embed\'s features within 1e-4', async (_name, model, side, normalization) => {
    const { dir, yaml } = await run(model, side, normalization);
    const imageDir = await images();
    const out = join(dir, 'encoder.onnx');
    const r = await runCli('export', '--checkpoint', dir, '--format', 'onnx', '--out', out);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^wrote .*encoder\.onnx: ONNX \(opset 17\) of the .* encoder from checkpoint .*\(epoch 3\)$/m);
    expect(r.stdout).toContain(`input 'images' [batch, 3, ${side}, ${side}]`);

    const embedded = join(dir, 'f.npy');
    expect((await runCli('embed', '--config', yaml, '--checkpoint', dir, '--images', imageDir, '--out', embedded)).code).toBe(0);
    const expected = (await readNpy(embedded)).toFloat32();
    const files = await listImages(imageDir);
    const got = await runOnnx(out, await preprocess(files, side, normalization), [files.length, 3, side, side]);
    expect(got.length).toBe(expected.length);
    expect(relativeError(got, expected)).toBeLessThan(1e-4);
  });

  it('exports a released checkpoint directly, sized by --image-size', async () => {
    const out = join(tempDir(), 'simsiam.onnx');
    const r = await runCli('export', '--checkpoint', torchFixture('simsiam_checkpoint_0099.pth.tar'), '--format', 'onnx', '--out', out, '--image-size', '24');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('from weights');
    expect(r.stdout).toContain("input 'images' [batch, 3, 24, 24]");
    const enc = buildEncoder(ModelSchema.parse({ arch: 'resnet18', stem: 'cifar', width: 1 }), 0);
    await loadWeights(enc.store, torchFixture('simsiam_checkpoint_0099.pth.tar'));
    const x = tf.randomNormal([2, 24, 24, 3], 0, 1, 'float32', 4) as tf.Tensor4D;
    const expected = tf.tidy(() => enc.backbone.features(x, false).dataSync() as Float32Array);
    const got = await runOnnx(out, tf.tidy(() => tf.transpose(x, [0, 3, 1, 2]).dataSync() as Float32Array), [2, 3, 24, 24]);
    expect(relativeError(got, expected)).toBeLessThan(1e-5);
    x.dispose();
    enc.store.dispose();
  });
});

describe('simtrip export --format torchvision | timm', () => {
  it('torchvision: the backbone alone under torchvision names, counters included, and it loads back exactly', async () => {
    const { dir, cfg } = await run({ arch: 'resnet18', stem: 'cifar', width: 4 }, 32, 'imagenet');
    const out = join(dir, 'tv.safetensors');
    const r = await runCli('export', '--checkpoint', dir, '--format', 'torchvision', '--out', out);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/no PyTorch class to load it into strictly: no torchvision ResNet has width 4/);
    const file = await readSafetensors(out);
    const names = file.names();
    expect(names).toContain('conv1.weight');
    expect(names).toContain('layer2.0.downsample.1.num_batches_tracked');
    expect(names.some((n) => /^(backbone|projector|predictor|fc)\./.test(n))).toBe(false);
    const bns = names.filter((n) => n.endsWith('.running_var'));
    const counters = names.filter((n) => n.endsWith('.num_batches_tracked'));
    expect(counters.map((n) => n.replace('num_batches_tracked', 'running_var')).sort()).toEqual(bns.sort());
    expect(file.info(counters[0]!)).toEqual({ dtype: 'I64', shape: [] });
    expect(file.info('conv1.weight')).toEqual({ dtype: 'F32', shape: [4, 3, 3, 3] });
    expect(file.metadata.format).toBe('pt');
    expect(JSON.parse(file.metadata['simtrip.export']!)).toMatchObject({ format: 'torchvision', loads_into: null });

    // The file is a torchvision state dict simtrip reads back: the same backbone, bit for bit.
    const original = buildEncoder(cfg.model, 1);
    await loadWeights(original.store, dir);
    const back = buildEncoder(cfg.model, 2);
    const report = await loadWeights(back.store, out);
    expect(report.missing).toEqual([]);
    for (const p of original.store.list()) expect(back.store.get(p.name).variable.dataSync()).toEqual(p.variable.dataSync());
    original.store.dispose();
    back.store.dispose();
  });

  it('timm: a BiT encoder under resnetv2_*_bit names, no head, and it loads back exactly', async () => {
    const { dir, cfg } = await run({ arch: 'bit-r50x1', stem: 'imagenet', width: 2 }, 32, 'bit');
    const out = join(dir, 'timm.safetensors');
    const r = await runCli('export', '--checkpoint', dir, '--format', 'timm', '--out', out);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/no timm model has root width 2: the keys are resnetv2_50x1_bit's/);
    expect(r.stdout).toMatch(/note: timm standardises BiT kernels with eps 1e-8/);
    const names = (await readSafetensors(out)).names();
    expect(names).toEqual(expect.arrayContaining(['stem.conv.weight', 'stages.0.blocks.0.downsample.conv.weight', 'stages.3.blocks.2.norm3.bias', 'norm.weight']));
    expect(names.some((n) => n.startsWith('head.') || n.includes('num_batches_tracked'))).toBe(false);
    const back = buildEncoder(cfg.model, 2);
    const original = buildEncoder(cfg.model, 1);
    await loadWeights(original.store, dir);
    expect((await loadWeights(back.store, out)).missing).toEqual([]);
    for (const p of original.store.list()) expect(back.store.get(p.name).variable.dataSync()).toEqual(p.variable.dataSync());
    original.store.dispose();
    back.store.dispose();
  });

  it('names the PyTorch model a full-width encoder loads into, and the lines that load it', () => {
    const m = (model: Record<string, unknown>) => ModelSchema.parse(model);
    expect(stateDictTarget(m({ arch: 'resnet50', stem: 'imagenet' }), 'torchvision', 'e.safetensors')).toEqual({
      model: 'torchvision.models.resnet50() with fc = Identity',
      python: [
        'from safetensors.torch import load_file',
        'import torch, torchvision',
        'model = torchvision.models.resnet50()',
        'model.fc = torch.nn.Identity()  # no classifier: the model returns the pooled features',
        'model.load_state_dict(load_file("e.safetensors"), strict=True)',
      ],
    });
    const cifar = stateDictTarget(m({ arch: 'resnet18', stem: 'cifar' }), 'timm', 'c.safetensors');
    expect(cifar).toMatchObject({ model: "timm.create_model('resnet18', num_classes=0), its stem swapped for the CIFAR stem (no timm class has it)" });
    expect('python' in cifar && cifar.python).toContain('model.conv1 = torch.nn.Conv2d(3, 64, 3, 1, 1, bias=False)');
    expect('python' in cifar && cifar.python).toContain('model.maxpool = torch.nn.Identity()');
    expect(stateDictTarget(m({ arch: 'bit-r101x3', stem: 'imagenet' }), 'timm', 'b.safetensors')).toMatchObject({ model: "timm.create_model('resnetv2_101x3_bit', num_classes=0)" });
    expect(stateDictTarget(m({ arch: 'bit-r50x1', stem: 'imagenet', norm: 'batch' }), 'timm', 'b.safetensors')).toEqual({ none: "no timm model has BatchNorm in place of GroupNorm: the keys are resnetv2_50x1_bit's" });
    expect(['bit-r50x1', 'bit-r152x4'].map(timmBitName)).toEqual(['resnetv2_50x1_bit', 'resnetv2_152x4_bit']);
  });
});

describe('simtrip export refuses', () => {
  it('bad flags, torchvision for BiT, and encoders a file does not fill, each in one line with exit 2', async () => {
    const f = torchFixture('timm_resnetv2_bit.bin');
    const cases: [string[], RegExp][] = [
      [['--format', 'keras', '--out', 'x.h5'], /--format: got 'keras', expected torchvision, timm, onnx/],
      [['--format', 'onnx', '--out', 'x.safetensors'], /--out: got 'x\.safetensors', expected a file name ending in \.onnx/],
      [['--format', 'torchvision', '--out', join(tempDir(), 'x.safetensors')], /torchvision has no ResNet-v2 .* use --format timm \(resnetv2_50x1_bit\)/],
      [['--format', 'onnx', '--out', 'x.onnx', '--image-size', '0'], /--image-size/],
    ];
    for (const [args, message] of cases) {
      const r = await runCli('export', '--checkpoint', f, ...args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
    const refused = await runCli('export', '--checkpoint', torchFixture('forbidden_numpy.pth'), '--format', 'onnx', '--out', join(tempDir(), 'x.onnx'));
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/numpy\.core\.multiarray\.scalar/);
  });
});
