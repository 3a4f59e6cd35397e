/**
 * Parity with PyTorch on the golden fixture: torchvision-named F16 weights loaded through loadWeights,
 * images through the evaluation preprocessing, features and logits against the reference outputs; on
 * the cpu backend and, where the addon is built, on onednn.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { tf } from '../../src/engine/tf.js';
import { ParamStore } from '../../src/model/params.js';
import { GOLDEN_FIXTURES } from '../../src/check/golden.js';
import { loadWeights } from '../../src/model/weights.js';
import { loadOnednn } from '../../src/engine/onednn/loader.js';
import { useCpuBackend } from '../helpers.js';
import { fixture } from '../io/tmp.js';
import { expectGoldenOutputs, loadFixtureImages } from './golden.js';

beforeAll(useCpuBackend);

const onednn = await loadOnednn();
if (!onednn.ok) console.warn(`parity on onednn skipped: ${onednn.reason} (${onednn.hint})`);
const backends = onednn.ok ? ['cpu', 'onednn'] : ['cpu'];

const DIR = 'resnet-basic1111-f16';


describe.each(backends)('torchvision ResNet parity (resnet-basic1111-f16) on %s', (backend) => {
  it('matches the PyTorch features and logits', async () => {
    await tf.setBackend(backend);
    const store = new ParamStore();
    const net = GOLDEN_FIXTURES.find((f) => f.dir === DIR)!.build(store);
    const report = await loadWeights(store, fixture(DIR, 'weights.safetensors'), { arch: 'basic-1111' });
    // Everything loads, fc included, and only the int64 counters are left over.
    expect(report.missing).toEqual([]);
    expect(report.loaded).toContain('backbone.fc.weight');
    expect(report.ignored.every((k) => k.endsWith('num_batches_tracked'))).toBe(true);

    const x = await loadFixtureImages(DIR, 'imagenet');
    const features = net.features(x, false);
    const logits = net.logits(features);
    await expectGoldenOutputs(DIR, features, logits, `${backend}`);
    tf.dispose([x, features, logits]);
    store.dispose();
  });
});
