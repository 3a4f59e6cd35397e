/**
 * The native oneDNN inference plan against the training graph (backbone.features(x, false) on the
 * cpu backend), the golden fixtures and the tfjs run of the same optimised graph: every backbone
 * family, batches that do not divide into micro-batches, n = 1, repeated runs and dispose.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { GOLDEN_FIXTURES } from '../../../src/check/golden.js';
import { tf } from '../../../src/engine/tf.js';
import { createOnednnPlanExtractor, onednnPlanAvailable } from '../../../src/engine/onednn/inference_plan.js';
import type { EncoderModel } from '../../../src/model/build.js';
import { BitResNet } from '../../../src/model/bit.js';
import { loadBitNpz } from '../../../src/model/bit_weights.js';
import { createTfjsGraphExtractor } from '../../../src/model/inference_graph_tfjs.js';
import { ParamStore } from '../../../src/model/params.js';
import { loadWeights } from '../../../src/model/weights.js';
import { readNpy } from '../../../src/io/npy.js';
import { Rng } from '../../../src/util/rng.js';
import { relativeError, useCpuBackend } from '../../helpers.js';
import { fixture } from '../../io/tmp.js';
import { loadFixtureImages } from '../../model/golden.js';
import { trainedLookingEncoder } from '../../model/tiny.js';
import { HAS_AVX512 } from '../onednn_winograd_cases.js';

beforeAll(useCpuBackend);

const available = onednnPlanAvailable();
if (!available) console.warn('onednn-plan tests skipped: the native addon with the inference plan is not built');

const trainedLooking = (model: Record<string, unknown>, bitDepths?: number[]): EncoderModel => trainedLookingEncoder(model, bitDepths);

function randomImages(n: number, side: number, seed: number): Float32Array {
  return tf.tidy(() => tf.randomNormal([n, side, side, 3], 0, 1, 'float32', seed).dataSync() as Float32Array);
}

function trainingGraph(enc: EncoderModel, images: Float32Array, n: number, side: number): Float32Array {
  return tf.tidy(() => enc.backbone.features(tf.tensor4d(images, [n, side, side, 3]), false).dataSync() as Float32Array);
}

const FAMILIES = [
  ['resnet18, CIFAR stem', { arch: 'resnet18', stem: 'cifar', width: 16 }, undefined, 16],
  ['resnet18, CIFAR stem, narrow (unblocked channels)', { arch: 'resnet18', stem: 'cifar', width: 4 }, undefined, 12],
  ['resnet50, ImageNet stem (padded max-pool)', { arch: 'resnet50', stem: 'imagenet', width: 8 }, undefined, 40],
  ['BiT GroupNorm, BiT root (zero pad + max-pool)', { arch: 'bit-r50x1', stem: 'imagenet', width: 16 }, [1, 1, 1, 1], 40],
  ['BiT GroupNorm, narrow (NHWC group norm)', { arch: 'bit-r50x1', stem: 'imagenet', width: 4 }, [2, 1, 1, 1], 24],
  ['BiT BatchNorm variant, CIFAR stem', { arch: 'bit-r50x1', stem: 'cifar', width: 8, norm: 'batch' }, [2, 1, 1, 1], 16],
] as const;

describe.runIf(available)('onednn inference plan', () => {
  it.each(FAMILIES)('%s: the training graph\'s features (relative error < 1e-4), 7 images in micro-batches of 3, and n = 1', async (_name, model, depths, side) => {
    const enc = trainedLooking(model, depths ? [...depths] : undefined);
    const plan = createOnednnPlanExtractor(enc, side, { batchSize: 3 });
    const images = randomImages(7, side, 1);
    const expected = trainingGraph(enc, images, 7, side);
    const got = await plan.run(images, 7);
    expect(got.length).toBe(7 * enc.backbone.featureDim);
    expect(relativeError(got, expected)).toBeLessThan(1e-4);
    const one = await plan.run(images.subarray(0, side * side * 3), 1);
    expect(relativeError(one, expected.subarray(0, enc.backbone.featureDim))).toBeLessThan(1e-4);
    plan.dispose();
    enc.store.dispose();
  });

  it.each(FAMILIES)('%s: the tfjs run of the same optimised graph agrees', async (_name, model, depths, side) => {
    const enc = trainedLooking(model, depths ? [...depths] : undefined);
    const plan = createOnednnPlanExtractor(enc, side);
    const fallback = createTfjsGraphExtractor(enc.backbone, side);
    const images = randomImages(5, side, 2);
    const before = tf.memory().numTensors;
    const viaTfjs = await fallback.run(images, 5);
    expect(tf.memory().numTensors).toBe(before);
    expect(relativeError(await plan.run(images, 5), viaTfjs)).toBeLessThan(1e-4);
    fallback.dispose();
    plan.dispose();
    enc.store.dispose();
  });

  it('repeats itself exactly, and a second plan after dispose works', async () => {
    const enc = trainedLooking({ arch: 'resnet18', stem: 'cifar', width: 16 });
    const images = randomImages(10, 16, 3);
    const first = createOnednnPlanExtractor(enc, 16, { batchSize: 4 });
    const a = await first.run(images, 10);
    expect(await first.run(images, 10)).toEqual(a);
    first.dispose();
    await expect(first.run(images, 10)).rejects.toThrow(/disposed/);
    const second = createOnednnPlanExtractor(enc, 16, { batchSize: 4 });
    expect(await second.run(images, 10)).toEqual(a);
    second.dispose();
    enc.store.dispose();
  });

  it('uses Winograd for the 3x3 convs with large enough outputs where oneDNN has it (AVX-512), within 1e-4 of the training graph', async () => {
    const enc = trainedLooking({ arch: 'resnet18', stem: 'cifar', width: 16 });
    const plan = createOnednnPlanExtractor(enc, 32, { batchSize: 16 });
    const images = randomImages(16, 32, 8);
    const expected = trainingGraph(enc, images, 16, 32);
    expect(relativeError(await plan.run(images, 16), expected)).toBeLessThan(1e-4);
    const convs = plan.primitives().split('\n').filter((l) => l.startsWith('conv 3x3/1'));
    const wino = convs.filter((l) => l.includes('wino'));
    if (HAS_AVX512) {
      // 16 images: the 32x32, 16x16 and 8x8 outputs have 1024, 256 and 64 tiles of 4x4; the 4x4 ones and the 3-channel stem stay direct.
      expect(wino.map((l) => /\d+->\d+/.exec(l)![0])).toEqual(['16->16', '16->16', '16->16', '16->16', '32->32', '32->32', '32->32', '64->64', '64->64', '64->64']);
    } else {
      expect(wino).toEqual([]);
    }
    plan.dispose();
    enc.store.dispose();
  });

  it('runs off the main thread: the event loop turns while a batch computes', async () => {
    const enc = trainedLooking({ arch: 'resnet18', stem: 'cifar', width: 16 });
    const plan = createOnednnPlanExtractor(enc, 32, { batchSize: 32 });
    const images = randomImages(64, 32, 4);
    await plan.run(images.subarray(0, 32 * 32 * 3), 1); // builds the micro-batch's primitives
    let turns = 0;
    let running = true;
    const spin = () => {
      turns++;
      if (running) setImmediate(spin);
    };
    setImmediate(spin);
    await plan.run(images, 64);
    running = false;
    // A synchronous run would finish before the first immediate callback.
    expect(turns).toBeGreaterThan(0);
    plan.dispose();
    enc.store.dispose();
  });

  it('serialises overlapping calls, and a dispose during them frees the plan only after they settle', async () => {
    const enc = trainedLooking({ arch: 'resnet18', stem: 'cifar', width: 16 });
    const plan = createOnednnPlanExtractor(enc, 16, { batchSize: 4 });
    const sets = [randomImages(9, 16, 5), randomImages(4, 16, 6), randomImages(7, 16, 7)];
    const expected = sets.map((x) => trainingGraph(enc, x, x.length / (16 * 16 * 3), 16));
    const runs = sets.map((x) => plan.run(x, x.length / (16 * 16 * 3)));
    expect(() => plan.primitives()).toThrow(/while a run is in flight/);
    plan.dispose();
    const got = await Promise.all(runs);
    got.forEach((g, i) => expect(relativeError(g, expected[i]!)).toBeLessThan(1e-4));
    await expect(plan.run(sets[0]!, 9)).rejects.toThrow(/disposed/);
    enc.store.dispose();
  });

  it('fuses what it should: ReLU and the residual add into the convs, one reorder at each end', () => {
    const enc = trainedLooking({ arch: 'resnet18', stem: 'cifar', width: 16 });
    const plan = createOnednnPlanExtractor(enc, 16, { batchSize: 4 });
    expect(plan.description).toMatch(/20 convs \(norms after them folded in, 17 with ReLU, 8 with the residual add fused\)/);
    const lines = plan.primitives().split('\n');
    expect(lines.filter((l) => l.startsWith('conv'))).toHaveLength(20);
    expect(lines.filter((l) => /^(reorder|to \[n, C\])/.test(l)).length).toBeLessThanOrEqual(2);
    plan.dispose();
    enc.store.dispose();
  });

  it('names the size mismatch of the images it is given', async () => {
    const enc = trainedLooking({ arch: 'resnet18', stem: 'cifar', width: 4 });
    const plan = createOnednnPlanExtractor(enc, 8);
    await expect(plan.run(new Float32Array(10), 1)).rejects.toThrow(/expected 1 images of 8x8x3 \(192 floats\), got 10 floats/);
    plan.dispose();
    enc.store.dispose();
  });
});

describe.runIf(available)('onednn inference plan on the golden fixtures', () => {
  it('resnet-basic1111-f16: the PyTorch features', async () => {
    const dir = 'resnet-basic1111-f16';
    const store = new ParamStore();
    const backbone = GOLDEN_FIXTURES.find((f) => f.dir === dir)!.build(store);
    await loadWeights(store, fixture(dir, 'weights.safetensors'), { arch: 'basic-1111' });
    const x = await loadFixtureImages(dir, 'imagenet');
    const plan = createOnednnPlanExtractor({ store, backbone, normalization: 'imagenet' }, 32);
    const got = await plan.run(x.dataSync() as Float32Array, 3);
    expect(relativeError(got, (await readNpy(fixture(dir, 'features.npy'))).toFloat32())).toBeLessThan(1e-4);
    plan.dispose();
    x.dispose();
    store.dispose();
  });

  it('bit-resnetv2-units1111: the BiT features', async () => {
    const dir = 'bit-resnetv2-units1111';
    const store = new ParamStore();
    const backbone = new BitResNet({ store, rng: new Rng(0, 'init') }, { depths: [1, 1, 1, 1], widthFactor: 1, stem: 'bit' }, 'backbone.');
    await loadBitNpz(store, fixture(dir, 'weights.npz'), { prefix: 'backbone.' });
    const x = await loadFixtureImages(dir, 'bit');
    const plan = createOnednnPlanExtractor({ store, backbone, normalization: 'bit' }, 32, { batchSize: 2 });
    const got = await plan.run(x.dataSync() as Float32Array, 3);
    expect(relativeError(got, (await readNpy(fixture(dir, 'features.npy'))).toFloat32())).toBeLessThan(1e-4);
    plan.dispose();
    x.dispose();
    store.dispose();
  });
});
