/**
 * The fused onednn SGD kernel (native/onednn/sgd.cc) against the composed-op fallback on the cpu backend:
 * same parameters, same gradients, three steps (the first creates the momentum buffers), with and
 * without weight decay and with the norm/bias exemption. Both do the same float32 operations in the
 * same order, so they are expected to agree exactly.
 */
// helpers first: it loads tfjs-core (CommonJS) before src/engine/tf.ts pulls in the ESM gradient files.
import { relativeError, useCpuBackend } from '../helpers.js';
import { describe, expect, it } from 'vitest';
import { tf } from '../../src/engine/tf.js';
import { loadOnednn } from '../../src/engine/onednn/loader.js';
import { loadNative } from '../../src/engine/onednn/native.js';
import { nativeRuns } from '../../src/engine/kernel_stats.js';
import { SGD_UPDATE } from '../../src/engine/custom_kernels.js';
import { ParamStore, type Layout } from '../../src/model/params.js';
import { Sgd, type SgdOptions } from '../../src/optim/sgd.js';
import { STEPS, trainSgd, type ParamSpec } from './sgd_runs.js';
import { Rng } from '../../src/util/rng.js';

/** Includes tensors above the kernel's OpenMP threshold (32768 elements) and tiny ones below it. */
const SPECS: ParamSpec[] = [
  { name: 'conv.weight', shape: [3, 3, 32, 64], layout: 'conv' },
  { name: 'bn.weight', shape: [64], layout: 'vector', normOrBias: true },
  { name: 'bn.bias', shape: [64], layout: 'vector', normOrBias: true },
  { name: 'fc.weight', shape: [37, 11], layout: 'linear' },
  { name: 'fc.bias', shape: [11], layout: 'vector', normOrBias: true },
  { name: 'pred.weight', shape: [200, 300], layout: 'linear', group: 'predictor' },
  { name: 'pred.bias', shape: [300], layout: 'vector', normOrBias: true, group: 'predictor' },
];
/** STEPS updates on the active backend. */
function train(opts: SgdOptions, tag: string) {
  return trainSgd(SPECS, opts, tag);
}

const onednn = await loadOnednn();
const native = loadNative();
const skipReason = !onednn.ok
  ? `${onednn.reason} (${onednn.hint})`
  : !(native.ok && typeof native.addon.sgdUpdate === 'function')
    ? 'the built addon predates native/onednn/sgd.cc (run node scripts/build-native.mjs)'
    : '';
if (skipReason) console.warn(`native SGD tests skipped: ${skipReason}`);

describe.skipIf(!!skipReason)('Sgd fused onednn kernel matches the composed fallback', () => {
  const cases: Array<{ name: string; opts: SgdOptions }> = [
    { name: 'weight decay, norm/bias exempt', opts: { momentum: 0.9, weightDecay: 5e-4, decayNormAndBias: false } },
    { name: 'weight decay on everything', opts: { momentum: 0.9, weightDecay: 1e-2, decayNormAndBias: true } },
    { name: 'no weight decay', opts: { momentum: 0.8, weightDecay: 0, decayNormAndBias: true } },
  ];
  for (const c of cases) {
    it(`${STEPS} steps: ${c.name}`, async () => {
      await useCpuBackend();
      expect(tf.getKernel(SGD_UPDATE, 'cpu'), 'the cpu backend has no fused kernel').toBeUndefined();
      const want = train(c.opts, c.name).result;
      await tf.setBackend('onednn');
      const before = nativeRuns.get(SGD_UPDATE) ?? 0;
      const got = train(c.opts, c.name);
      expect((nativeRuns.get(SGD_UPDATE) ?? 0) - before, 'native runs').toBe(STEPS * SPECS.length);
      for (const s of SPECS) {
        const a = got.result.get(s.name)!;
        const b = want.get(s.name)!;
        expect(relativeError(a.w, b.w), `${s.name} weights`).toBeLessThan(1e-6);
        expect(relativeError(a.buf, b.buf), `${s.name} momentum`).toBeLessThan(1e-6);
        // Same float32 operations in the same order: bit-identical.
        expect(a.w, `${s.name} weights exact`).toEqual(b.w);
        expect(a.buf, `${s.name} momentum exact`).toEqual(b.buf);
      }
      // Steps after the first (which creates the buffers) hold the tensor count flat.
      expect(got.tensorCounts[1]).toBe(got.tensorCounts[0]);
      expect(got.tensorCounts[2]).toBe(got.tensorCounts[0]);
    });
  }

  it('the exemption and weight decay really change the result (the comparison can tell)', async () => {
    await tf.setBackend('onednn');
    const exempt = train({ momentum: 0.9, weightDecay: 1e-1, decayNormAndBias: false }, 'x').result;
    const decayed = train({ momentum: 0.9, weightDecay: 1e-1, decayNormAndBias: true }, 'x').result;
    expect(exempt.get('conv.weight')!.w).toEqual(decayed.get('conv.weight')!.w);
    expect(relativeError(exempt.get('bn.weight')!.w, decayed.get('bn.weight')!.w)).toBeGreaterThan(1e-4);
  });
});
