/**
 * standardizeWeight: forward against a float64 JS reference (per output channel over kh, kw, in,
 * biased variance), removal of a non-zero mean, gradients against central finite differences.
 */
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { loadOnednn } from '../../src/engine/onednn/loader.js';
import { nativeRuns } from '../../src/engine/kernel_stats.js';
import { BATCH_NORM_TRAIN, BATCH_NORM_TRAIN_GRAD } from '../../src/engine/custom_kernels.js';
import { tf } from '../../src/engine/tf.js';
import { standardizeWeight } from '../../src/ops/weight_standardization.js';
import { Rng } from '../../src/util/rng.js';
import { relativeError, useCpuBackend } from '../helpers.js';

// The native kernels (onednn) and the composed fallback (cpu) each face the same reference.
const onednn = await loadOnednn();
const backends = onednn.ok ? ['cpu', 'onednn'] : ['cpu'];
afterAll(useCpuBackend);

function randomValues(n: number, seed: string, scale = 1, offset = 0): Float64Array {
  const rng = new Rng('weight-standardization-test', seed);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = offset + scale * rng.normal();
  return out;
}

/** Float64 reference on a flat HWIO kernel with `cout` output channels (the fastest axis). */
function reference(w: Float64Array, cout: number, eps: number): Float64Array {
  const m = w.length / cout;
  const out = new Float64Array(w.length);
  for (let o = 0; o < cout; o++) {
    let mean = 0;
    for (let i = 0; i < m; i++) mean += w[i * cout + o]!;
    mean /= m;
    let v = 0;
    for (let i = 0; i < m; i++) v += (w[i * cout + o]! - mean) ** 2;
    v /= m;
    for (let i = 0; i < m; i++) out[i * cout + o] = (w[i * cout + o]! - mean) / Math.sqrt(v + eps);
  }
  return out;
}

const SHAPE: [number, number, number, number] = [3, 3, 2, 4];
const SIZE = SHAPE.reduce((a, b) => a * b, 1);
const COUT = SHAPE[3];

describe.each(backends)('standardizeWeight on %s', (backend) => {
  // A non-zero mean, as in the BiT fixture, which standardisation must remove.
  const w = randomValues(SIZE, 'w', 0.1, 0.3);
  beforeEach(async () => {
    if (backend === 'cpu') await useCpuBackend();
    else await tf.setBackend(backend);
  });

  it('matches the float64 reference with eps 1e-10 and with eps 1e-8', async () => {
    for (const eps of [1e-10, 1e-8]) {
      const y = standardizeWeight(tf.tensor4d(Float32Array.from(w), SHAPE), eps);
      expect(y.shape).toEqual(SHAPE);
      expect(relativeError(await y.data(), reference(w, COUT, eps))).toBeLessThan(1e-5);
    }
  });

  it('removes a non-zero mean and gives unit biased variance per output channel', async () => {
    const y = standardizeWeight(tf.tensor4d(Float32Array.from(w), SHAPE));
    const { mean, variance } = tf.moments(y, [0, 1, 2]);
    const meanOf = (a: Float64Array, o: number) => {
      let s = 0;
      for (let i = o; i < a.length; i += COUT) s += a[i]!;
      return s / (a.length / COUT);
    };
    for (let o = 0; o < COUT; o++) expect(Math.abs(meanOf(w, o))).toBeGreaterThan(0.1);
    for (const m of await mean.data()) expect(Math.abs(m)).toBeLessThan(1e-6);
    for (const v of await variance.data()) expect(v).toBeCloseTo(1, 5);
  });

  it('has gradients matching central finite differences', async () => {
    const r = randomValues(SIZE, 'upstream');
    const eps = 1e-10;
    const loss = (a: Float64Array) => reference(a, COUT, eps).reduce((s, v, i) => s + v * r[i]!, 0);
    const g = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(standardizeWeight(t as tf.Tensor4D, eps), tf.tensor(Float32Array.from(r), SHAPE))));
    const dw = await g(tf.tensor4d(Float32Array.from(w), SHAPE)).data();
    const h = 1e-7;
    const fd = Float64Array.from(w, (v, i) => {
      const p = Float64Array.from(w);
      p[i] = v + h;
      const up = loss(p);
      p[i] = v - h;
      return (up - loss(p)) / (2 * h);
    });
    expect(relativeError(dw, fd)).toBeLessThan(1e-3);
  });
});

describe.skipIf(!onednn.ok)('standardizeWeight on onednn', () => {
  it('runs as the native batch-norm kernels, forward and backward', async () => {
    await tf.setBackend('onednn');
    const w = randomValues(SIZE, 'w', 0.1, 0.3);
    const before = [nativeRuns.get(BATCH_NORM_TRAIN) ?? 0, nativeRuns.get(BATCH_NORM_TRAIN_GRAD) ?? 0];
    tf.tidy(() => tf.grad((t: tf.Tensor) => tf.sum(tf.square(standardizeWeight(t as tf.Tensor4D))))(tf.tensor4d(Float32Array.from(w), SHAPE)));
    expect([(nativeRuns.get(BATCH_NORM_TRAIN) ?? 0) - before[0]!, (nativeRuns.get(BATCH_NORM_TRAIN_GRAD) ?? 0) - before[1]!]).toEqual([1, 1]);
  });
});
