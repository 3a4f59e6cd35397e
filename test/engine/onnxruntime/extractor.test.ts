/**
 * The onnxruntime extractor (the encoder's in-memory ONNX with an NHWC input, tuned session) against
 * the golden fixtures' PyTorch features and the training graph.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { GOLDEN_FIXTURES } from '../../../src/check/golden.js';
import { ModelSchema } from '../../../src/config/schema.js';
import { tf } from '../../../src/engine/tf.js';
import { createOnnxruntimeExtractor, onnxruntimeUnavailable } from '../../../src/engine/onnxruntime/extractor.js';
import { trainingGraphFeatures } from '../../../src/eval/training_graph_extractor.js';
import { readNpy } from '../../../src/io/npy.js';
import { buildEncoder, type EncoderModel } from '../../../src/model/build.js';
import { ParamStore } from '../../../src/model/params.js';
import { loadWeights } from '../../../src/model/weights.js';
import { relativeError, useCpuBackend } from '../../helpers.js';
import { loadFixtureImages } from '../../model/golden.js';
import { perturb, tinySgd } from '../../model/tiny.js';
import { fixture } from '../../io/tmp.js';

beforeAll(useCpuBackend);

describe('onnxruntime extractor', () => {
  it('loads here', async () => {
    expect(await onnxruntimeUnavailable()).toBeUndefined();
  });

  it.each(GOLDEN_FIXTURES.map((f) => [f.dir, f] as const))('%s: the PyTorch reference features (relative error < 1e-4)', async (dir, f) => {
    const store = new ParamStore();
    const model: EncoderModel = { store, backbone: f.build(store), normalization: f.normalization };
    await loadWeights(store, fixture(dir, f.weights), { arch: f.arch });
    const x = await loadFixtureImages(dir, f.normalization);
    const extractor = await createOnnxruntimeExtractor(model, 32);
    const got = await extractor.run(x.dataSync() as Float32Array, 3);
    const ref = await readNpy(fixture(dir, 'features.npy'));
    expect(relativeError(got, ref.toFloat32())).toBeLessThan(1e-4);
    extractor.dispose();
    x.dispose();
    store.dispose();
  });

  it.each([
    ['resnet18, CIFAR stem', { arch: 'resnet18', stem: 'cifar', width: 8 }, 16],
    ['resnet50, ImageNet stem', { arch: 'resnet50', stem: 'imagenet', width: 4 }, 40],
  ])('%s: the training graph\'s features for any batch size, threads as asked', async (_name, cfg, side) => {
    const model = buildEncoder(ModelSchema.parse(cfg), 9);
    const sgd = tinySgd(model.store);
    perturb(model.store, sgd, 4);
    sgd.dispose();
    const extractor = await createOnnxruntimeExtractor(model, side, { threads: 1 });
    expect(extractor.description).toMatch(/^onnxruntime 1\.\d+\.\d+ CPU \(graph optimisation all, 1 intra-op threads, NHWC input\)$/);
    expect(extractor.featureDim).toBe(model.backbone.featureDim);
    for (const n of [1, 5]) {
      const images = tf.tidy(() => tf.randomNormal([n, side, side, 3], 0, 1, 'float32', n).dataSync() as Float32Array);
      const expected = trainingGraphFeatures(model.backbone, images, n, side);
      const got = await extractor.run(images, n);
      expect(got.length).toBe(n * model.backbone.featureDim);
      expect(relativeError(got, expected)).toBeLessThan(1e-5);
    }
    extractor.dispose();
    model.store.dispose();
  });
});
