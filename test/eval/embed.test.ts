/**
 * `simtrip embed` (and eval, which shares loadEncoder) take the input scaling from where the weights
 * came from: a BiT checkpoint is embedded with [-1, 1] inputs even when the current config describes
 * a BatchNorm ResNet, and model.weights with a BiT .npz gives pretrained features without a checkpoint.
 */
import { useCpuBackend } from '../helpers.js';
import { writeFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { ConfigSchema, type Config } from '../../src/config/schema.js';
import { tf } from '../../src/engine/tf.js';
import { embedFiles, embedFolder } from '../../src/eval/embed.js';
import type { FeatureExtractor } from '../../src/eval/extractor.js';
import { createTrainingGraphExtractor } from '../../src/eval/training_graph_extractor.js';
import { loadEncoder } from '../../src/eval/evaluate.js';
import { listImages, readImageResized } from '../../src/io/image.js';
import { readNpy } from '../../src/io/npy.js';
import { BitResNet } from '../../src/model/bit.js';
import { buildEncoder, buildSslModel, type EncoderModel } from '../../src/model/build.js';
import { loadWeights } from '../../src/model/weights.js';
import { saveCheckpoint } from '../../src/train/checkpoint.js';
import { Rng } from '../../src/util/rng.js';
import { relativeError } from '../helpers.js';
import { tempDir } from '../io/tmp.js';
import { bitNpzArrays, npzBytes, randomValues } from '../model/bit_files.js';

beforeAll(useCpuBackend);

const SIZE = 16;
const config = (model: Record<string, unknown>): Config =>
  ConfigSchema.parse({
    data: { image_size: SIZE },
    model: { stem: 'cifar', width: 4, ...model },
    method: { proj_dim: 16, proj_hidden: 16, proj_layers: 2, pred_hidden: 8 },
    eval: { batch_size: 2 },
  });

let images: string;
beforeAll(async () => {
  images = join(tempDir(), 'images');
  await mkdir(images);
  const rng = new Rng(5, 'embed-test');
  for (const name of ['c.png', 'a.png', 'b.png']) {
    const pixels = Buffer.from(Array.from({ length: SIZE * SIZE * 3 }, () => Math.floor(rng.uniform(0, 256))));
    await sharp(pixels, { raw: { width: SIZE, height: SIZE, channels: 3 } }).toFile(join(images, name));
  }
});

/** Features computed by hand: decoded pixels scaled the given way, straight into the backbone. */
async function byHand(model: EncoderModel, scale: 'bit' | 'imagenet'): Promise<Float32Array> {
  const mean = [0.485, 0.456, 0.406];
  const std = [0.229, 0.224, 0.225];
  const files = await listImages(images);
  const x = new Float32Array(files.length * SIZE * SIZE * 3);
  for (const [i, f] of files.entries()) {
    const img = await readImageResized(f, SIZE);
    img.data.forEach((v, j) => {
      x[i * SIZE * SIZE * 3 + j] = scale === 'bit' ? v / 127.5 - 1 : (v / 255 - mean[j % 3]!) / std[j % 3]!;
    });
  }
  return tf.tidy(() => model.backbone.features(tf.tensor4d(x, [files.length, SIZE, SIZE, 3]), false).dataSync() as Float32Array);
}

const quiet = () => {};

describe('a BiT checkpoint under a ResNet config', () => {
  it("eval's encoder and embed use the checkpoint's model and its 'bit' input scaling", async () => {
    const bitCfg = config({ arch: 'bit-r50x1', norm: 'batch' });
    const src = buildSslModel(bitCfg.model, bitCfg.method, 1);
    const runDir = tempDir();
    await saveCheckpoint(runDir, { store: src.store, state: { epoch: 3, step: 6, config: bitCfg, normalization: 'bit', engine: 'cpu' } });
    src.store.dispose();

    const resnetCfg = config({ arch: 'resnet18' });
    const { model, source } = await loadEncoder(resnetCfg, runDir, quiet);
    expect(model.backbone).toBeInstanceOf(BitResNet);
    expect(model.normalization).toBe('bit');
    expect(source).toMatch(/epoch 3/);
    const bit = await byHand(model, 'bit');
    const imagenet = await byHand(model, 'imagenet');
    model.store.dispose();

    const out = join(tempDir(), 'f.npy');
    const lines: string[] = [];
    const r = await embedFolder({ config: resnetCfg, checkpoint: runDir, imagesDir: images, out, log: (l) => lines.push(l) });
    expect(r).toMatchObject({ count: 3, dim: 128 });
    expect(lines.join('\n')).toContain("inputs scaled for 'bit'");
    const got = (await readNpy(out)).toFloat32();
    expect(relativeError(got, bit)).toBeLessThan(1e-5);
    // The scaling matters: ImageNet mean/std would give other features.
    expect(relativeError(got, imagenet)).toBeGreaterThan(1e-2);
  });
});

describe('model.weights with a BiT .npz and no checkpoint (the "BiT" arm)', () => {
  it('embeds pretrained features', async () => {
    const arrays = bitNpzArrays({ depths: [3, 4, 6, 3], width: 4, numClasses: 7 });
    const npz = join(tempDir(), 'BiT-tiny.npz');
    writeFileSync(npz, npzBytes(arrays, randomValues(arrays, 4), { method: 8 }));
    const cfg = config({ arch: 'bit-r50x1', stem: 'imagenet', weights: npz });

    const expected = buildEncoder(cfg.model, 99);
    await loadWeights(expected.store, npz);
    const bit = await byHand(expected, 'bit');
    expected.store.dispose();

    const out = join(tempDir(), 'bit.npy');
    const lines: string[] = [];
    const r = await embedFolder({ config: cfg, imagesDir: images, out, log: (l) => lines.push(l) });
    expect(lines.join('\n')).toMatch(/weights: loaded \d+ tensors from .*BiT-tiny\.npz/);
    expect(r.dim).toBe(128);
    // Every weight came from the file: the seed of the random init does not matter (a wrong weight
    // would be off by O(1); the bound is the inference runtimes' contract with the training graph).
    expect(relativeError((await readNpy(out)).toFloat32(), bit)).toBeLessThan(1e-4);
  });
});

describe('embedFiles (the decoding pipeline)', () => {
  it('gives every batch size the features of one batch, in file order; a bad file in a later batch is its error, not a crash', async () => {
    const model = buildEncoder(config({ arch: 'resnet18' }).model, 4);
    const reference = createTrainingGraphExtractor(model.backbone, SIZE);
    // Slow on purpose: the next batch's decoding settles while this one is still running.
    const slow: FeatureExtractor = { ...reference, run: async (x, n) => (await new Promise((r) => setTimeout(r, 100)), reference.run(x, n)) };
    const files = await listImages(images);
    const opts = { normalization: model.normalization, batchSize: 3 };
    const whole = await embedFiles(slow, files, opts);
    for (const batchSize of [1, 2]) expect(await embedFiles(slow, files, { ...opts, batchSize })).toEqual(whole);
    const bad = join(tempDir(), 'zz-broken.png');
    writeFileSync(bad, 'not a png');
    await expect(embedFiles(slow, [...files, bad], { ...opts, batchSize: 2 })).rejects.toThrow(/zz-broken\.png.*cannot read image/);
    model.store.dispose();
  });
});
