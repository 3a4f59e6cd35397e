/**
 * The golden fixtures (outputs of the original PyTorch models, test/fixtures/) on any backend: the
 * models built as their reference code builds them, weights through loadWeights, images decoded
 * with pngjs (so the check runs where sharp is not installed) and the evaluation preprocessing.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { PNG } from 'pngjs';
import { preprocessEval, type Normalization } from '../data/augment.js';
import { ArrayImageDataset } from '../data/dataset.js';
import { tf } from '../engine/tf.js';
import { readNpy } from '../io/npy.js';
import { BitResNet } from '../model/bit.js';
import { ParamStore } from '../model/params.js';
import { ResNet } from '../model/resnet.js';
import { loadWeights } from '../model/weights.js';
import { Rng } from '../util/rng.js';
import { relativeError } from './compare.js';

export interface GoldenFixture {
  dir: string;
  weights: string;
  arch: string;
  normalization: Normalization;
  build(store: ParamStore): ResNet | BitResNet;
}

export const GOLDEN_FIXTURES: readonly GoldenFixture[] = [
  {
    dir: 'resnet-basic1111-f16',
    weights: 'weights.safetensors',
    arch: 'basic-1111',
    normalization: 'imagenet',
    build: (store) =>
      new ResNet({ store, rng: new Rng(0, 'init') }, { block: 'basic', layers: [1, 1, 1, 1], stem: 'imagenet', width: 64, zeroInitResidual: false, numClasses: 10 }, 'backbone.'),
  },
  {
    dir: 'bit-resnetv2-units1111',
    weights: 'weights.npz',
    arch: 'bit-r50x1',
    normalization: 'bit',
    build: (store) => new BitResNet({ store, rng: new Rng(0, 'init') }, { depths: [1, 1, 1, 1], widthFactor: 1, stem: 'bit', numClasses: 10 }, 'backbone.'),
  },
];

/** images/img00..02.png as the model input. */
function fixtureInput(dir: string, normalization: Normalization): tf.Tensor4D {
  const images = [0, 1, 2].map((i) => PNG.sync.read(readFileSync(path.join(dir, 'images', `img0${i}.png`))));
  const side = images[0]!.height;
  const pixels = new Uint8Array(images.length * side * side * 3);
  images.forEach((img, i) => {
    if (img.width !== side || img.height !== side) throw new Error(`${dir}: images must be ${side}x${side}`);
    for (let p = 0; p < side * side; p++) pixels.set(img.data.subarray(p * 4, p * 4 + 3), (i * side * side + p) * 3);
  });
  const ds = new ArrayImageDataset(pixels, side, side, new Int32Array(images.length).fill(-1), []);
  return tf.tensor4d(preprocessEval(ds, [0, 1, 2], side, normalization), [images.length, side, side, 3]);
}

/**
 * The gradients of sum(features²) with respect to every backbone parameter, from the fixture's real
 * weights on a seeded training-mode batch: a backward pass through every layer the fixture has
 * (GroupNorm and weight standardisation for BiT), well-conditioned where random weights are not.
 */
export async function goldenGradients(fixturesRoot: string, f: GoldenFixture): Promise<Map<string, Float32Array>> {
  const store = new ParamStore();
  try {
    const net = f.build(store);
    await loadWeights(store, path.join(fixturesRoot, f.dir, f.weights), { arch: f.arch });
    const rng = new Rng(`golden-gradients ${f.dir}`);
    // 4 images of 64 px: the last stage's training-mode batch norms see 16 rows, not a degenerate 2.
    const x = tf.tensor4d(Float32Array.from({ length: 4 * 64 * 64 * 3 }, () => rng.normal()), [4, 64, 64, 3]);
    const vars = store.trainable().map((p) => p.variable);
    const { value, grads } = tf.variableGrads(() => tf.sum(tf.square(net.features(x, true))) as tf.Scalar, vars);
    const out = new Map<string, Float32Array>();
    for (const p of store.trainable()) {
      const g = grads[p.variable.name];
      if (g) out.set(p.name, (await g.data()) as Float32Array);
    }
    tf.dispose([x, value, ...Object.values(grads)]);
    return out;
  } finally {
    store.dispose();
  }
}

export interface GoldenResult {
  fixture: string;
  featuresError: number;
  logitsError: number;
}

/** Features and logits of one fixture on the active backend against its reference outputs. */
export async function goldenParity(fixturesRoot: string, f: GoldenFixture): Promise<GoldenResult> {
  const dir = path.join(fixturesRoot, f.dir);
  const store = new ParamStore();
  try {
    const net = f.build(store);
    await loadWeights(store, path.join(dir, f.weights), { arch: f.arch });
    const x = fixtureInput(dir, f.normalization);
    const features = net.features(x, false);
    const logits = net.logits(features);
    const [refFeatures, refLogits] = await Promise.all([readNpy(path.join(dir, 'features.npy')), readNpy(path.join(dir, 'logits.npy'))]);
    const result = {
      fixture: f.dir,
      featuresError: relativeError(await features.data(), refFeatures.toFloat32()),
      logitsError: relativeError(await logits.data(), refLogits.toFloat32()),
    };
    tf.dispose([x, features, logits]);
    return result;
  } finally {
    store.dispose();
  }
}
