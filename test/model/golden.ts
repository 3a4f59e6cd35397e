/** The golden fixtures' shared steps: their images as a model input, and the comparison of outputs. */
import { expect } from 'vitest';
import { preprocessEval, type Normalization } from '../../src/data/augment.js';
import { ArrayImageDataset } from '../../src/data/dataset.js';
import { tf } from '../../src/engine/tf.js';
import { readImageRGB } from '../../src/io/image.js';
import { readNpy } from '../../src/io/npy.js';
import { relativeError } from '../helpers.js';
import { fixture } from '../io/tmp.js';

const SIZE = 32;

/** images/img00..02.png of a fixture folder through the evaluation preprocessing. */
export async function loadFixtureImages(dir: string, normalization: Normalization): Promise<tf.Tensor4D> {
  const images = await Promise.all([0, 1, 2].map((i) => readImageRGB(fixture(dir, 'images', `img0${i}.png`))));
  for (const img of images) expect([img.height, img.width]).toEqual([SIZE, SIZE]);
  const pixels = new Uint8Array(images.length * SIZE * SIZE * 3);
  images.forEach((img, i) => pixels.set(img.data, i * SIZE * SIZE * 3));
  const ds = new ArrayImageDataset(pixels, SIZE, SIZE, new Int32Array(images.length).fill(-1), []);
  return tf.tensor4d(preprocessEval(ds, [0, 1, 2], SIZE, normalization), [images.length, SIZE, SIZE, 3]);
}

/** features.npy and logits.npy of the fixture, matched to a relative error under 1e-4. */
export async function expectGoldenOutputs(dir: string, features: tf.Tensor, logits: tf.Tensor, label: string): Promise<void> {
  const refFeatures = await readNpy(fixture(dir, 'features.npy'));
  const refLogits = await readNpy(fixture(dir, 'logits.npy'));
  expect(features.shape).toEqual([...refFeatures.shape]);
  expect(logits.shape).toEqual([...refLogits.shape]);
  const featErr = relativeError(await features.data(), refFeatures.toFloat32());
  const logitErr = relativeError(await logits.data(), refLogits.toFloat32());
  console.log(`${label} parity relative error: features ${featErr.toExponential(3)}, logits ${logitErr.toExponential(3)}`);
  expect(featErr).toBeLessThan(1e-4);
  expect(logitErr).toBeLessThan(1e-4);
}
