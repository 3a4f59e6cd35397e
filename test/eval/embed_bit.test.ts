/**
 * The paper's "BiT" arm through the code path `simtrip embed` takes without a checkpoint: buildEncoder
 * from the config, loadWeights from model.weights (the official .npz layout), then embedFiles (image
 * decoding, [-1, 1] scaling, batching) through the training graph on each backend and through ONNX
 * Runtime. The golden fixture's features come from the original PyTorch
 * BiT code; its model has one unit per stage, which only code (not the config) can ask for.
 */
import { useCpuBackend } from '../helpers.js';
import { beforeAll, describe, expect, it } from 'vitest';
import { ConfigSchema } from '../../src/config/schema.js';
import { tf } from '../../src/engine/tf.js';
import { loadOnednn } from '../../src/engine/onednn/loader.js';
import { onednnPlanAvailable } from '../../src/engine/onednn/inference_plan.js';
import { embedFiles } from '../../src/eval/embed.js';
import type { ConcreteInferenceRuntime } from '../../src/eval/extractor.js';
import { createInference } from '../../src/eval/inference.js';
import { listImages } from '../../src/io/image.js';
import { readNpy } from '../../src/io/npy.js';
import { buildEncoder } from '../../src/model/build.js';
import { loadWeights } from '../../src/model/weights.js';
import { relativeError } from '../helpers.js';
import { fixture } from '../io/tmp.js';

beforeAll(useCpuBackend);

const onednn = await loadOnednn();
if (!onednn.ok) console.warn(`BiT embed parity on onednn skipped: ${onednn.reason} (${onednn.hint})`);
const backends: [string, ConcreteInferenceRuntime][] = [
  ['cpu', 'tfjs'],
  ['cpu', 'onnxruntime'],
  ...(onednn.ok ? [['onednn', 'tfjs'] as [string, ConcreteInferenceRuntime]] : []),
  ...(onednn.ok && onednnPlanAvailable() ? [['onednn', 'onednn-plan'] as [string, ConcreteInferenceRuntime]] : []),
];

const DIR = 'bit-resnetv2-units1111';

describe.each(backends)('BiT features through the embed path (%s engine, %s runtime)', (backend, runtime) => {
  it('reproduce the reference features from the .npz alone', async () => {
    await tf.setBackend(backend);
    const cfg = ConfigSchema.parse({
      data: { image_size: 32 },
      model: { arch: 'bit-r50x1', stem: 'imagenet', weights: fixture(DIR, 'weights.npz') },
      eval: { batch_size: 2 },
    });
    const model = buildEncoder(cfg.model, cfg.seed, { bitDepths: [1, 1, 1, 1] });
    expect(model.normalization).toBe('bit');
    const report = await loadWeights(model.store, cfg.model.weights!, { arch: cfg.model.arch });
    expect(report.missing).toEqual([]);
    // Features only: the head is left in the file.
    expect([...report.ignored].sort()).toEqual(['resnet/head/conv2d/bias', 'resnet/head/conv2d/kernel']);

    const files = await listImages(fixture(DIR, 'images'));
    // A batch of 2 over 3 images: the last batch is partial, as in a real folder.
    const extractor = await createInference(model, { runtime, imageSize: cfg.data.image_size, batchSize: cfg.eval.batch_size, log: () => {} });
    expect(extractor.runtime).toBe(runtime);
    const features = await embedFiles(extractor, files, { normalization: model.normalization, batchSize: cfg.eval.batch_size });
    expect(extractor.runtime, 'the first-batch check kept the runtime').toBe(runtime);
    extractor.dispose();
    const ref = await readNpy(fixture(DIR, 'features.npy'));
    expect([files.length, model.backbone.featureDim]).toEqual([...ref.shape]);
    const err = relativeError(features, ref.toFloat32());
    console.log(`BiT embed path on ${backend} (${runtime}): features relative error ${err.toExponential(3)}`);
    expect(err).toBeLessThan(1e-4);
    model.store.dispose();
  });
});
