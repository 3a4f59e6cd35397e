/**
 * Parity with PyTorch on the golden fixture: torchvision-named F16 weights loaded through loadWeights,
 * images through the evaluation preprocessing, features and logits against the reference outputs; on
 * the cpu backend and, where the addon is built, on onednn.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { preprocessEval } from '../../src/data/augment.js';
import { ArrayImageDataset } from '../../src/data/dataset.js';
import { tf } from '../../src/engine/tf.js';
import { readImageRGB } from '../../src/io/image.js';
import { readNpy } from '../../src/io/npy.js';
import { ParamStore } from '../../src/model/params.js';
import { ResNet } from '../../src/model/resnet.js';
import { loadWeights } from '../../src/model/weights.js';
import { loadOnednn } from '../../src/engine/onednn/loader.js';
import { Rng } from '../../src/util/rng.js';
import { relativeError, useCpuBackend } from '../helpers.js';
import { fixture } from '../io/tmp.js';

beforeAll(useCpuBackend);

const onednn = await loadOnednn();
if (!onednn.ok) console.warn(`parity on onednn skipped: ${onednn.reason} (${onednn.hint})`);
const backends = onednn.ok ? ['cpu', 'onednn'] : ['cpu'];

const DIR = 'resnet-basic1111-f16';
const SIZE = 32;

async function loadImages(): Promise<tf.Tensor4D> {
  const images = await Promise.all([0, 1, 2].map((i) => readImageRGB(fixture(DIR, 'images', `img0${i}.png`))));
  for (const img of images) expect([img.height, img.width]).toEqual([SIZE, SIZE]);
  const pixels = new Uint8Array(images.length * SIZE * SIZE * 3);
  images.forEach((img, i) => pixels.set(img.data, i * SIZE * SIZE * 3));
  const ds = new ArrayImageDataset(pixels, SIZE, SIZE, new Int32Array(images.length).fill(-1), []);
  const x = preprocessEval(ds, [0, 1, 2], SIZE, 'imagenet');
  return tf.tensor4d(x, [images.length, SIZE, SIZE, 3]);
}

describe.each(backends)('torchvision ResNet parity (resnet-basic1111-f16) on %s', (backend) => {
  it('matches the PyTorch features and logits', async () => {
    await tf.setBackend(backend);
    const store = new ParamStore();
    const net = new ResNet(
      { store, rng: new Rng(0, 'init') },
      { block: 'basic', layers: [1, 1, 1, 1], stem: 'imagenet', width: 64, zeroInitResidual: false, numClasses: 10 },
      'backbone.',
    );
    const report = await loadWeights(store, fixture(DIR, 'weights.safetensors'), { arch: 'basic-1111' });
    // Everything loads, fc included, and only the int64 counters are left over.
    expect(report.missing).toEqual([]);
    expect(report.loaded).toContain('backbone.fc.weight');
    expect(report.ignored.every((k) => k.endsWith('num_batches_tracked'))).toBe(true);

    const x = await loadImages();
    const features = net.features(x, false);
    const logits = net.logits(features);
    const refFeatures = await readNpy(fixture(DIR, 'features.npy'));
    const refLogits = await readNpy(fixture(DIR, 'logits.npy'));
    expect(features.shape).toEqual([...refFeatures.shape]);
    expect(logits.shape).toEqual([...refLogits.shape]);
    const featErr = relativeError(await features.data(), refFeatures.toFloat32());
    const logitErr = relativeError(await logits.data(), refLogits.toFloat32());
    console.log(`parity relative error on ${backend}: features ${featErr.toExponential(3)}, logits ${logitErr.toExponential(3)}`);
    expect(featErr).toBeLessThan(1e-4);
    expect(logitErr).toBeLessThan(1e-4);
    tf.dispose([x, features, logits]);
    store.dispose();
  });
});
