/**
 * Frozen pretrained features refuse weights that leave part of the backbone at its random init, and
 * name the tensors and the config lines that fix it; a bit-* config without model.stem now takes the
 * file's root and embeds every tensor from the file.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { ConfigSchema, type Config } from '../../src/config/schema.js';
import { tf } from '../../src/engine/tf.js';
import { embedFolder } from '../../src/eval/embed.js';
import { loadEncoder } from '../../src/eval/evaluate.js';
import { writeSafetensors, type TensorToWrite } from '../../src/io/safetensors.js';
import { buildEncoder } from '../../src/model/build.js';
import { toTorchPerm } from '../../src/model/params.js';
import { loadWeights } from '../../src/model/weights.js';
import { UserError } from '../../src/util/errors.js';
import { Rng } from '../../src/util/rng.js';
import { relativeError, useCpuBackend } from '../helpers.js';
import { tempDir } from '../io/tmp.js';
import { bitNpzArrays, npzBytes, randomValues } from '../model/bit_files.js';

beforeAll(useCpuBackend);

const SIZE = 16;
const config = (model: Record<string, unknown>): Config =>
  ConfigSchema.parse({ data: { image_size: SIZE }, model: { width: 4, ...model }, eval: { batch_size: 2 } });

let images: string;
let npz: string;
beforeAll(async () => {
  images = join(tempDir(), 'images');
  await mkdir(images);
  const rng = new Rng(7, 'frozen-test');
  for (const name of ['a.png', 'b.png']) {
    const pixels = Buffer.from(Array.from({ length: SIZE * SIZE * 3 }, () => Math.floor(rng.uniform(0, 256))));
    await sharp(pixels, { raw: { width: SIZE, height: SIZE, channels: 3 } }).toFile(join(images, name));
  }
  const arrays = bitNpzArrays({ depths: [3, 4, 6, 3], width: 4, numClasses: 5 });
  npz = join(tempDir(), 'BiT-tiny.npz');
  writeFileSync(npz, npzBytes(arrays, randomValues(arrays, 3)));
});

/** The UserError `action` fails with, as one line. */
async function refusal(action: Promise<unknown>): Promise<string> {
  const err = await action.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(UserError);
  const message = (err as Error).message;
  expect(message).not.toMatch(/\n/);
  return message;
}

describe('frozen features from model.weights', () => {
  it('a BiT .npz with the default stem loads every backbone tensor, the root included', async () => {
    const cfg = config({ arch: 'bit-r50x1', weights: npz });
    expect(cfg.model.stem).toBe('imagenet');
    const out = join(tempDir(), 'f.npy');
    const lines: string[] = [];
    const r = await embedFolder({ config: cfg, imagesDir: images, out, log: (l) => lines.push(l) });
    expect(r.count).toBe(2);
    expect(lines.join('\n')).not.toMatch(/backbone\./);
    expect(existsSync(out)).toBe(true);
  });

  it('embed refuses a CIFAR stem that leaves the file\'s root behind, naming the tensor and model.stem: imagenet', async () => {
    const cfg = config({ arch: 'bit-r50x1', stem: 'cifar', weights: npz });
    const out = join(tempDir(), 'g.npy');
    const message = await refusal(embedFolder({ config: cfg, imagesDir: images, out, log: () => {} }));
    expect(message).toContain(`model.weights: ${npz} leaves 1 backbone tensor(s) newly initialised (backbone.stem.conv.weight)`);
    expect(message).toContain('set model.stem: imagenet to load them from the file');
    expect(existsSync(out)).toBe(false);
  });

  it('eval without a checkpoint refuses the BatchNorm variant, whose norms the file does not fill: model.norm: group', async () => {
    const cfg = config({ arch: 'bit-r50x1', norm: 'batch', weights: npz });
    const before = tf.memory().numTensors;
    const message = await refusal(loadEncoder(cfg, undefined, () => {}));
    expect(message).toMatch(/leaves \d+ backbone tensor\(s\) newly initialised \(backbone\.stages\.0\.blocks\.0\.norm1\.weight, /);
    expect(message).toContain('set model.norm: group');
    expect(message).not.toContain('model.stem');
    // The encoder built for the refused weights is released.
    expect(tf.memory().numTensors).toBe(before);
  });

  it('both lines when both differ', async () => {
    const message = await refusal(loadEncoder(config({ arch: 'bit-r50x1', stem: 'cifar', norm: 'batch', weights: npz }), undefined, () => {}));
    expect(message).toContain('set model.stem: imagenet, model.norm: group');
  });

  it('a state dict that lacks backbone tensors: the file is not the whole backbone', async () => {
    const cfg = config({ arch: 'resnet18', stem: 'cifar' });
    const src = buildEncoder(cfg.model, 1);
    const tensors: TensorToWrite[] = src.store
      .list()
      .filter((p) => !p.name.startsWith('backbone.layer4.'))
      .map((p) => {
        const perm = toTorchPerm(p.layout, p.variable.rank);
        const t = perm ? tf.transpose(p.variable, perm) : p.variable;
        const out: TensorToWrite = { name: p.name.slice('backbone.'.length), dtype: 'F32', shape: t.shape, data: t.dataSync() as Float32Array };
        if (t !== p.variable) t.dispose();
        return out;
      });
    src.store.dispose();
    const path = join(tempDir(), 'partial.safetensors');
    await writeSafetensors(path, tensors);
    const message = await refusal(loadEncoder({ ...cfg, model: { ...cfg.model, weights: path } }, undefined, () => {}));
    expect(message).toMatch(/newly initialised \(backbone\.layer4\.0\.conv1\.weight, /);
    expect(message).toContain(`use a weights file that holds the whole resnet18 backbone (simtrip weights inspect ${path} shows what this one holds)`);
  });

  it('a file that fills the whole backbone gives the same features as loading it by hand', async () => {
    const cfg = config({ arch: 'bit-r50x1', weights: npz });
    const { model } = await loadEncoder(cfg, undefined, () => {});
    const byHand = buildEncoder(cfg.model, 42);
    await loadWeights(byHand.store, npz);
    const x = tf.randomUniform([2, SIZE, SIZE, 3], -1, 1, 'float32', 5);
    const a = tf.tidy(() => model.backbone.features(x, false).dataSync() as Float32Array);
    const b = tf.tidy(() => byHand.backbone.features(x, false).dataSync() as Float32Array);
    x.dispose();
    model.store.dispose();
    byHand.store.dispose();
    expect(relativeError(a, b)).toBeLessThan(1e-6);
  });
});
