/**
 * Released checkpoint layouts, in files written by real torch (test/fixtures/torch): `weights inspect`
 * names each, and model.weights loads each backbone, bit for bit, with the usual load report.
 */
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ModelSchema } from '../../src/config/schema.js';
import { BACKBONE_PREFIX, buildEncoder } from '../../src/model/build.js';
import { inspectWeights } from '../../src/model/inspect.js';
import { bitPytorchToTimm, findStateDict, recogniseLayout } from '../../src/model/released_layouts.js';
import { openTorchStateDict } from '../../src/model/state_dicts.js';
import { formatWeightsReport, loadWeights } from '../../src/model/weights.js';
import { checkpointTensors } from '../../src/train/checkpoint.js';
import { runCli } from '../cli/run_cli.js';
import { useCpuBackend } from '../helpers.js';
import { expectedTensors, torchFixture } from '../io/torch_fixtures.js';
import { tempDir } from '../io/tmp.js';

beforeAll(useCpuBackend);

interface Case {
  file: string;
  layout: RegExp;
  entry: string;
  prefix: string;
  model: Record<string, unknown>;
  /** File tensors the load must report as ignored (by their names in the file). */
  ignored: string[];
}

const RESNET = { arch: 'resnet18', stem: 'cifar', width: 1 };
const CASES: Case[] = [
  { file: 'simsiam_checkpoint_0099.pth.tar', layout: /^SimSiam checkpoint/, entry: 'state_dict', prefix: 'module.encoder.', model: RESNET, ignored: ['module.encoder.fc.0.weight', 'module.predictor.3.bias'] },
  { file: 'moco_v2_checkpoint.pth.tar', layout: /^MoCo v1\/v2/, entry: 'state_dict', prefix: 'module.encoder_q.', model: RESNET, ignored: ['module.encoder_k.conv1.weight', 'module.queue', 'module.encoder_q.fc.2.weight'] },
  { file: 'moco_v3_checkpoint.pth.tar', layout: /^MoCo v3/, entry: 'state_dict', prefix: 'module.base_encoder.', model: RESNET, ignored: ['module.momentum_encoder.conv1.weight', 'module.predictor.0.weight', 'module.base_encoder.fc.0.weight'] },
  { file: 'dino_checkpoint.pth', layout: /^DINO/, entry: 'teacher', prefix: 'backbone.', model: RESNET, ignored: ['head.0.weight'] },
  { file: 'lightning.ckpt', layout: /^Lightning checkpoint \(pytorch-lightning 1\.9\.0\)/, entry: 'state_dict', prefix: 'model.backbone.', model: RESNET, ignored: ['model.projection_head.0.weight', 'online_classifier.weight'] },
  { file: 'simtriplet.pth', layout: /^SimTriplet/, entry: 'state_dict', prefix: 'backbone.', model: RESNET, ignored: ['encoder.0.conv1.weight', 'projector.layer1.0.weight'] },
  { file: 'bit_simsiam.pth', layout: /^BiT-SimSiam/, entry: 'state_dict', prefix: 'backbone.', model: { arch: 'bit-r50x1', stem: 'cifar', width: 1, norm: 'batch' }, ignored: ['encoder.0.root.conv.weight', 'predictor.layer2.bias'] },
  { file: 'torchvision_resnet18_legacy.pth', layout: /^torchvision\/timm ResNet state dict/, entry: '', prefix: '', model: RESNET, ignored: ['fc.weight', 'fc.bias'] },
  { file: 'timm_resnetv2_bit.bin', layout: /^timm resnetv2/, entry: '', prefix: '', model: { arch: 'bit-r50x1', stem: 'imagenet', width: 1 }, ignored: [] },
];

describe.each(CASES)('$file', (c) => {
  it('weights inspect names the layout and the config lines that build its backbone', async () => {
    const s = await inspectWeights(torchFixture(c.file));
    expect(s.layout).toMatch(c.layout);
    expect(s.layout).toContain(c.entry ? `state dict in '${c.entry}'` : '');
    const lines = Object.entries(c.model).map(([k, v]) => `model.${k}: ${v}`);
    expect(s.usage.filter((u) => !u.startsWith('model.weights'))).toEqual(lines);
    if (c.prefix) expect(s.architecture).toContain(`behind prefix '${c.prefix}'`);
  });

  it('model.weights loads the whole backbone, bit for bit, from the chosen state dict', async () => {
    const model = buildEncoder(ModelSchema.parse(c.model), 0);
    const report = await loadWeights(model.store, torchFixture(c.file), { arch: c.model.arch as string });
    const backbone = model.store.list().map((p) => p.name);
    expect([...report.loaded].sort()).toEqual([...backbone].sort());
    expect(report.missing).toEqual([]);
    expect(report.mismatched).toEqual([]);
    expect(report.ignored).toEqual(expect.arrayContaining(c.ignored));
    expect(formatWeightsReport(report)).toContain(`loaded ${backbone.length} tensors from ${torchFixture(c.file)}`);

    // Every model parameter, in PyTorch layout, equals the tensor torch saved under the layout's name.
    const { tensors } = await openTorchStateDict(torchFixture(c.file));
    const expected = new Map((await expectedTensors(c.file)).map((e) => [e.path, e]));
    for (const t of await checkpointTensors(model.store)) {
      const local = t.name.slice(BACKBONE_PREFIX.length);
      const path = [c.entry, tensors.fileName(local)].filter(Boolean).join('/');
      const e = expected.get(path);
      expect(e, `${t.name} <- ${path}`).toBeDefined();
      expect(e!.dtype).toBe('float32');
      expect(Buffer.from((t.data as Float32Array).buffer).equals(Buffer.from(e!.bytes)), path).toBe(true);
    }
    model.store.dispose();
  });
});

describe('choices between candidates', () => {
  it('DINO: the teacher, not the student (different weights in the fixture)', async () => {
    const { tensors, layout } = await openTorchStateDict(torchFixture('dino_checkpoint.pth'));
    expect(layout?.entry).toBe('teacher');
    expect(tensors.fileName('conv1.weight')).toBe('backbone.conv1.weight');
    const expected = new Map((await expectedTensors('dino_checkpoint.pth')).map((e) => [e.path, e.bytes]));
    const raw = Buffer.from(tensors.raw('layer1.0.conv1.weight'));
    expect(raw.equals(Buffer.from(expected.get('teacher/backbone.layer1.0.conv1.weight')!))).toBe(true);
    expect(raw.equals(Buffer.from(expected.get('student/module.backbone.layer1.0.conv1.weight')!))).toBe(false);
  });

  it('a momentum or target encoder is never picked over the model, whatever the key order', () => {
    const keys = (p: string) => [`${p}conv1.weight`, `${p}layer1.0.conv1.weight`];
    const shape = () => [1, 3, 3, 3];
    for (const [other, mine] of [
      ['module.momentum_encoder.', 'module.base_encoder.'],
      ['module.encoder_k.', 'module.encoder_q.'],
      ['target_net.', 'online_net.'],
      ['encoder.0.', 'backbone.'],
      ['optimizer.momentum.backbone.', 'backbone.'],
    ]) {
      expect(recogniseLayout([...keys(other!), ...keys(mine!)], shape)?.prefix).toBe(mine);
      expect(recogniseLayout([...keys(mine!), ...keys(other!)], shape)?.prefix).toBe(mine);
    }
    expect(recogniseLayout(['patch_embed.proj.weight', 'blocks.0.attn.qkv.weight'], shape)).toBeNull();
  });

  it('bit_pytorch names map onto timm\'s one for one', () => {
    expect(bitPytorchToTimm('root.conv.weight')).toBe('stem.conv.weight');
    expect(bitPytorchToTimm('body.block2.unit01.downsample.weight')).toBe('stages.1.blocks.0.downsample.conv.weight');
    expect(bitPytorchToTimm('body.block4.unit03.gn2.running_var')).toBe('stages.3.blocks.2.norm2.running_var');
    expect(bitPytorchToTimm('body.block1.unit10.conv3.weight')).toBe('stages.0.blocks.9.conv3.weight');
    expect(bitPytorchToTimm('head.gn.bias')).toBe('norm.bias');
    expect(bitPytorchToTimm('head.conv.weight')).toBe('head.fc.weight');
    expect(bitPytorchToTimm('body.block1.unit01.relu.weight')).toBeNull();
  });

  it('a file without any state dict says what its top level holds', () => {
    expect(() => findStateDict(new Map([['epoch', 3], ['arch', 'resnet50']]))).toThrow(/no state dict in the checkpoint \(top-level keys: epoch, arch\)/);
  });
});

describe('the command line', () => {
  it('weights inspect prints the layout; refused and truncated files exit 2 with one line', async () => {
    const ok = await runCli('weights', 'inspect', torchFixture('moco_v3_checkpoint.pth.tar'));
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/^layout {7}MoCo v3 checkpoint \(the base encoder\), state dict in 'state_dict'$/m);
    expect(ok.stdout).toMatch(/^notes {8}momentum_encoder, the predictor and the fc projector are not loaded$/m);

    const refused = await runCli('weights', 'inspect', torchFixture('forbidden_os_system.pth'));
    expect(refused.code).toBe(2);
    expect(refused.stderr.trim().split('\n')).toHaveLength(1);
    expect(refused.stderr).toMatch(/refused to unpickle the global 'posix\.system'/);

    const cut = join(tempDir(), 'cut.pth.tar');
    writeFileSync(cut, readFileSync(torchFixture('simsiam_checkpoint_0099.pth.tar')).subarray(0, 5000));
    const truncated = await runCli('weights', 'inspect', cut);
    expect(truncated.code).toBe(2);
    expect(truncated.stderr.trim().split('\n')).toHaveLength(1);
    expect(truncated.stderr).toContain(`${cut}: truncated`);
  });

  it('embed reads a released checkpoint through model.weights', async () => {
    const dir = tempDir();
    const weights = join(dir, 'checkpoint.pth.tar');
    copyFileSync(torchFixture('simsiam_checkpoint_0099.pth.tar'), weights);
    const images = join(dir, 'images');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(images);
    for (const f of ['img00.png', 'img01.png']) copyFileSync(join(torchFixture('..'), 'resnet-basic1111-f16', 'images', f), join(images, f));
    const config = join(dir, 'c.yaml');
    writeFileSync(config, `model: {arch: resnet18, stem: cifar, width: 1, weights: ${weights}}\ndata: {image_size: 32}\n`);
    const r = await runCli('embed', '--config', config, '--images', images, '--out', join(dir, 'f.npy'));
    expect(r.stderr).toMatch(/loaded 100 tensors from .*checkpoint\.pth\.tar/);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/embedded 2 images .* \[2, 8\]/);
  });
});
