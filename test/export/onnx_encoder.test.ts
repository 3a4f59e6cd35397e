/**
 * The ONNX encoder against simtrip's own features: onnxruntime-node runs the exported bytes on the
 * same inputs, for every backbone family (BatchNorm ResNets with either stem and block, BiT with
 * GroupNorm or BatchNorm and either stem).
 */
import * as ort from 'onnxruntime-node';
import { beforeAll, describe, expect, it } from 'vitest';
import { tf } from '../../src/engine/tf.js';
import type { EncoderModel } from '../../src/model/build.js';
import { encoderOnnx, ONNX_FEATURES, ONNX_INPUT } from '../../src/export/onnx_encoder.js';
import { ONNX_OPSET } from '../../src/export/onnx_graph.js';
import { useCpuBackend, relativeError } from '../helpers.js';
import { trainedLookingEncoder } from '../model/tiny.js';

beforeAll(useCpuBackend);

const trainedLooking = (model: Record<string, unknown>, bitDepths?: number[]): EncoderModel => trainedLookingEncoder(model, bitDepths);

async function onnxFeatures(bytes: Uint8Array, nchw: Float32Array, dims: number[]): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(bytes);
  try {
    const out = await session.run({ [ONNX_INPUT]: new ort.Tensor('float32', nchw, dims) });
    return out[ONNX_FEATURES]!.data as Float32Array;
  } finally {
    await session.release();
  }
}

function randomImages(batch: number, side: number, seed: number): { nhwc: tf.Tensor4D; nchw: Float32Array } {
  const nhwc = tf.randomNormal([batch, side, side, 3], 0, 1, 'float32', seed) as tf.Tensor4D;
  const nchw = tf.tidy(() => tf.transpose(nhwc, [0, 3, 1, 2]).dataSync() as Float32Array);
  return { nhwc, nchw };
}

describe('encoderOnnx', () => {
  it.each([
    ['resnet18, CIFAR stem', { arch: 'resnet18', stem: 'cifar', width: 4 }, undefined, 16],
    ['resnet18, ImageNet stem (padded max-pool)', { arch: 'resnet18', stem: 'imagenet', width: 4 }, undefined, 40],
    ['resnet50 (bottlenecks), ImageNet stem', { arch: 'resnet50', stem: 'imagenet', width: 4 }, undefined, 40],
    ['BiT GroupNorm, BiT root (zero pad + max-pool)', { arch: 'bit-r50x1', stem: 'imagenet', width: 4 }, [1, 1, 1, 1], 40],
    ['BiT BatchNorm variant, CIFAR stem', { arch: 'bit-r50x1', stem: 'cifar', width: 4, norm: 'batch' }, [2, 1, 1, 1], 16],
    ['BiT BatchNorm variant, BiT root', { arch: 'bit-r50x1', stem: 'imagenet', width: 4, norm: 'batch' }, [1, 1, 1, 1], 40],
  ])('%s: onnxruntime gives simtrip\'s features (relative error < 1e-5)', async (_name, model, depths, side) => {
    const enc = trainedLooking(model, depths);
    const bytes = encoderOnnx(enc, { imageSize: side, normalization: enc.normalization });
    for (const batch of [1, 3]) {
      const { nhwc, nchw } = randomImages(batch, side, batch);
      const expected = tf.tidy(() => enc.backbone.features(nhwc, false).dataSync() as Float32Array);
      const got = await onnxFeatures(bytes, nchw, [batch, 3, side, side]);
      expect(got.length).toBe(batch * enc.backbone.featureDim);
      expect(relativeError(got, expected)).toBeLessThan(1e-5);
      nhwc.dispose();
    }
    enc.store.dispose();
  });

  it('declares a dynamic batch, the opset, and the preprocessing in the metadata', async () => {
    const enc = trainedLooking({ arch: 'resnet18', stem: 'cifar', width: 2 });
    const bytes = encoderOnnx(enc, { imageSize: 32, normalization: 'imagenet', metadata: { source: 'runs/x' } });
    const session = await ort.InferenceSession.create(bytes);
    expect(session.inputNames).toEqual([ONNX_INPUT]);
    expect(session.outputNames).toEqual([ONNX_FEATURES]);
    await session.release();
    const { onnx } = (await import('onnx-proto')).default;
    const model = onnx.ModelProto.decode(bytes);
    expect(Number(model.opsetImport[0]!.version)).toBe(ONNX_OPSET);
    const dims = model.graph!.input[0]!.type!.tensorType!.shape!.dim!;
    expect(dims.map((d) => d.dimParam || Number(d.dimValue))).toEqual(['batch', 3, 32, 32]);
    const props = Object.fromEntries(model.metadataProps.map((p) => [p.key, p.value]));
    expect(JSON.parse(props.preprocessing!)).toMatchObject({ color: 'RGB', layout: 'NCHW', resize: { shorter_side: 32 }, crop: { center: [32, 32] }, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] });
    expect(props).toMatchObject({ opset: String(ONNX_OPSET), source: 'runs/x', feature_dim: '16', image_size: '32' });
    // Initializers carry the parameters' own names.
    expect(model.graph!.initializer.map((t) => t.name)).toContain('backbone.layer1.0.conv1.weight');
    enc.store.dispose();
  });

  it('takes a head after the features (the extension point for a probe)', async () => {
    const enc = trainedLooking({ arch: 'resnet18', stem: 'cifar', width: 2 });
    const bytes = encoderOnnx(enc, {
      imageSize: 16,
      normalization: 'imagenet',
      head: (g, features) => ({ output: g.node('Softmax', 'probabilities', [features], { axis: { int: 1 } }), dims: ['batch', 16], metadata: { head: 'softmax' } }),
    });
    const { nhwc, nchw } = randomImages(2, 16, 9);
    const session = await ort.InferenceSession.create(bytes);
    const out = await session.run({ [ONNX_INPUT]: new ort.Tensor('float32', nchw, [2, 3, 16, 16]) });
    await session.release();
    const p = out.probabilities!.data as Float32Array;
    const expected = tf.tidy(() => tf.softmax(enc.backbone.features(nhwc, false)).dataSync() as Float32Array);
    expect(relativeError(p, expected)).toBeLessThan(1e-5);
    nhwc.dispose();
    enc.store.dispose();
  });
});
