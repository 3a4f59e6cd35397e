/**
 * The fused SGD update (native/cuda/kernels/sgd.cu) on the CUDA host build against the composed-op
 * update of src/optim/sgd.ts on the cpu backend: the same float32 operations in the same order, so
 * bit-identical, for the first step (which creates the momentum buffers) and later ones, with and
 * without weight decay, and for special values.
 */
import { describe, expect, it } from 'vitest';
import { tf } from '../../../src/engine/tf.js';
import { fallbackRuns, nativeRuns, resetKernelStats } from '../../../src/engine/kernel_stats.js';
import { SGD_UPDATE } from '../../../src/engine/custom_kernels.js';
import { ParamStore, type Layout } from '../../../src/model/params.js';
import { Sgd, type SgdOptions } from '../../../src/optim/sgd.js';
import { STEPS, trainSgd, type ParamSpec } from '../../optim/sgd_runs.js';
import { Rng } from '../../../src/util/rng.js';
import { relativeError } from '../../helpers.js';
import { CUDA_HOST, loadCudaHost } from './helpers.js';

const load = await loadCudaHost();

const bits = (a: Float32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));

const SPECS: ParamSpec[] = [
  { name: 'conv.weight', shape: [3, 3, 16, 32], layout: 'conv' },
  { name: 'bn.weight', shape: [32], layout: 'vector', normOrBias: true },
  { name: 'bn.bias', shape: [32], layout: 'vector', normOrBias: true },
  { name: 'fc.weight', shape: [37, 11], layout: 'linear' },
  { name: 'pred.weight', shape: [64, 96], layout: 'linear', group: 'predictor' },
  { name: 'pred.bias', shape: [96], layout: 'vector', normOrBias: true, group: 'predictor' },
];
/** STEPS updates on `backend`; every weight and momentum buffer afterwards. */
async function train(backend: string, opts: SgdOptions, tag: string) {
  await tf.setBackend(backend);
  return trainSgd(SPECS, opts, tag);
}

describe.skipIf(!load.ok)('Sgd on the CUDA host build', () => {
  const cases: Array<{ name: string; opts: SgdOptions }> = [
    { name: 'weight decay, norm/bias exempt', opts: { momentum: 0.9, weightDecay: 5e-4, decayNormAndBias: false } },
    { name: 'weight decay on everything', opts: { momentum: 0.9, weightDecay: 1e-2, decayNormAndBias: true } },
    { name: 'no weight decay', opts: { momentum: 0.8, weightDecay: 0, decayNormAndBias: true } },
  ];
  for (const c of cases) {
    it(`${STEPS} steps, ${c.name}: bit-identical to the composed update on cpu, all native`, async () => {
      const want = (await train('cpu', c.opts, c.name)).result;
      resetKernelStats();
      const got = await train(CUDA_HOST, c.opts, c.name);
      expect(nativeRuns.get(SGD_UPDATE)).toBe(STEPS * SPECS.length);
      // Nothing of the update runs on the host: no fallback of any kernel.
      expect(fallbackRuns.size).toBe(0);
      for (const s of SPECS) {
        const a = got.result.get(s.name)!;
        const b = want.get(s.name)!;
        expect(bits(a.w), `${s.name} weights`).toEqual(bits(b.w));
        expect(bits(a.buf), `${s.name} momentum`).toEqual(bits(b.buf));
      }
      expect(got.tensorCounts[1]).toBe(got.tensorCounts[0]);
      expect(got.tensorCounts[2]).toBe(got.tensorCounts[0]);
    });
  }

  it('weight decay and the exemption really change the result (the comparison can tell)', async () => {
    const exempt = (await train(CUDA_HOST, { momentum: 0.9, weightDecay: 1e-1, decayNormAndBias: false }, 'x')).result;
    const decayed = (await train(CUDA_HOST, { momentum: 0.9, weightDecay: 1e-1, decayNormAndBias: true }, 'x')).result;
    expect(exempt.get('conv.weight')!.w).toEqual(decayed.get('conv.weight')!.w);
    expect(relativeError(exempt.get('bn.weight')!.w, decayed.get('bn.weight')!.w)).toBeGreaterThan(1e-4);
  });
});

describe.skipIf(!load.ok)('SimtripSgdUpdate alone on the CUDA host build', () => {
  const special = [0, -0, 1, -1, 1e-45, -3e-39, 1.5e-38, 3e38, -3e38, Infinity, -Infinity, NaN, 0.1, 65504, 1 / 3];
  const n = special.length * special.length;
  // Every pair of special values as (w, g), with a random buffer.
  const w = Float32Array.from({ length: n }, (_, i) => special[Math.floor(i / special.length)]!);
  const g = Float32Array.from({ length: n }, (_, i) => special[i % special.length]!);
  const rng = new Rng('cuda-sgd-test', 'special/buf');
  const buf = Float32Array.from({ length: n }, () => 2 * rng.normal());

  /** The composed update of src/optim/sgd.ts, op for op. */
  function composed(first: boolean, lr: number, momentum: number, wd: number): tf.Tensor[] {
    const wt = tf.tensor(w);
    const gt = tf.tensor(g);
    const d = wd > 0 ? tf.add(gt, tf.mul(wt, wd)) : gt;
    const b = first ? d : tf.add(tf.mul(tf.tensor(buf), momentum), d);
    return [tf.sub(wt, tf.mul(b, lr)), b];
  }

  function fused(first: boolean, lr: number, momentum: number, wd: number): tf.Tensor[] {
    const inputs: tf.NamedTensorMap = first ? { w: tf.tensor(w), g: tf.tensor(g) } : { w: tf.tensor(w), g: tf.tensor(g), buf: tf.tensor(buf) };
    return tf.engine().runKernel(SGD_UPDATE, inputs, { lr, momentum, weightDecay: wd, first }) as tf.Tensor[];
  }

  for (const [first, wd] of [[true, 0], [true, 5e-4], [false, 0], [false, 1e-2]] as const) {
    it(`${first ? 'first step' : 'later step'}, weight decay ${wd}: bit-identical on zeros, subnormals, extremes, Inf and NaN`, async () => {
      await tf.setBackend('cpu');
      const want = tf.tidy(() => composed(first, 0.1, 0.9, wd).map((t) => t.dataSync() as Float32Array));
      await tf.setBackend(CUDA_HOST);
      resetKernelStats();
      const got = tf.tidy(() => fused(first, 0.1, 0.9, wd).map((t) => t.dataSync() as Float32Array));
      expect(nativeRuns.get(SGD_UPDATE)).toBe(1);
      expect(fallbackRuns.size).toBe(0);
      // NaNs may differ in payload between JS and the kernel; everything else bit for bit.
      const canonical = (a: Float32Array) => bits(a).map((b, i) => (Number.isNaN(a[i]!) ? 'NaN' : b));
      expect(canonical(got[0]!), 'weights').toEqual(canonical(want[0]!));
      expect(canonical(got[1]!), 'momentum').toEqual(canonical(want[1]!));
    });
  }

  it('an empty parameter gives empty outputs', async () => {
    await tf.setBackend(CUDA_HOST);
    const out = tf.engine().runKernel(SGD_UPDATE, { w: tf.zeros([0, 4]), g: tf.zeros([0, 4]) }, { lr: 0.1, momentum: 0.9, weightDecay: 0, first: true }) as tf.Tensor[];
    expect(out.map((t) => t.shape)).toEqual([[0, 4], [0, 4]]);
    tf.dispose(out);
  });
});
