/**
 * ReLU's gradient: the native one-pass kernel (onednn) against tfjs' own composition, bit for bit
 * (NaN, infinities, signed zeros included); tf.grad of relu on onednn runs it instead of Step and
 * Multiply; finite differences; and the cpu backend keeps tfjs' composition.
 */
// helpers first: it loads tfjs-core (CommonJS) before src/engine/tf.ts pulls in the ESM gradient files.
import { useCpuBackend } from '../helpers.js';
import { describe, expect, it } from 'vitest';
import { tf } from '../../src/engine/tf.js';
import { loadOnednn } from '../../src/engine/onednn/loader.js';
import { nativeRuns, resetKernelStats } from '../../src/engine/kernel_stats.js';
import { composedReluGrad, RELU_GRAD, reluGrad } from '../../src/ops/relu_grad.js';
import { Rng } from '../../src/util/rng.js';

await useCpuBackend();
const onednn = await loadOnednn();
if (!onednn.ok) console.warn(`onednn relu-grad tests skipped: ${onednn.reason} (${onednn.hint})`);

/** Values around the kink and every special value, then random ones: [2, 3, 5, n] so it has a shape. */
function operands(n: number): { dy: Float32Array; x: Float32Array } {
  const special = [0, -0, 1e-30, -1e-30, 1, -1, Infinity, -Infinity, NaN, 3.5e38, -3.5e38];
  const size = 30 * n;
  const rng = new Rng('relu-grad');
  const dy = new Float32Array(size);
  const x = new Float32Array(size);
  for (let i = 0; i < size; i++) {
    dy[i] = i < special.length * special.length ? special[i % special.length]! : rng.next() * 4 - 2;
    x[i] = i < special.length * special.length ? special[Math.floor(i / special.length)]! : rng.next() * 4 - 2;
  }
  return { dy, x };
}

const bits = (a: Float32Array) => [...new Uint32Array(a.buffer, a.byteOffset, a.length)].map((b) => (Number.isNaN(new Float32Array(new Uint32Array([b]).buffer)[0]) ? 'nan' : b));

describe.skipIf(!onednn.ok)('reluGrad on onednn', () => {
  it('equals tfjs\' dy * cast(step(x)) bit for bit, NaN and infinities included, on small and large tensors', async () => {
    await tf.setBackend('onednn');
    for (const n of [5, 4000]) {
      const { dy, x } = operands(n);
      const shape = [2, 3, 5, n];
      const dyT = tf.tensor(dy, shape);
      const xT = tf.tensor(x, shape);
      resetKernelStats();
      const fused = reluGrad(dyT, xT);
      expect(nativeRuns.get(RELU_GRAD)).toBe(1);
      const composed = composedReluGrad(dyT, xT);
      expect(bits(fused.dataSync() as Float32Array)).toEqual(bits(composed.dataSync() as Float32Array));
      expect(fused.shape).toEqual(shape);
      tf.dispose([dyT, xT, fused, composed]);
    }
  });

  it('is what tf.grad of relu runs there: no Step, same gradient as the cpu backend, and no leak', async () => {
    const { x } = operands(50);
    const weights = operands(50).dy.map((v, i) => v + i * 1e-3);
    const lossGrad = () => {
      return tf.tidy(() => {
        const xT = tf.tensor(x.map((v) => (Number.isFinite(v) ? v : 0)), [30, 50]);
        const w = tf.tensor(weights.map((v) => (Number.isFinite(v) ? v : 0)), [30, 50]);
        return tf.grad((a: tf.Tensor) => tf.sum(tf.mul(tf.relu(a), w)))(xT).dataSync().slice();
      });
    };
    await tf.setBackend('cpu');
    const reference = lossGrad();
    await tf.setBackend('onednn');
    const before = tf.memory().numTensors;
    resetKernelStats();
    const got = lossGrad();
    expect(nativeRuns.get(RELU_GRAD)).toBe(1);
    expect(nativeRuns.get('Step') ?? 0).toBe(0);
    expect(tf.memory().numTensors).toBe(before);
    expect([...got]).toEqual([...reference]);
  });

  it('matches finite differences of relu away from the kink', async () => {
    await tf.setBackend('onednn');
    const rng = new Rng('relu-fd');
    const x = Float64Array.from({ length: 64 }, () => (rng.next() < 0.5 ? -1 : 1) * (0.05 + rng.next()));
    const w = Float64Array.from({ length: 64 }, () => rng.next() * 2 - 1);
    const f = (v: Float64Array) => v.reduce((s, xi, i) => s + Math.max(0, xi) * w[i]!, 0);
    const g = tf.tidy(() => tf.grad((a: tf.Tensor) => tf.sum(tf.mul(tf.relu(a), tf.tensor(Float32Array.from(w)))))(tf.tensor(Float32Array.from(x))).dataSync().slice());
    const h = 1e-3;
    for (let i = 0; i < x.length; i++) {
      const up = Float64Array.from(x);
      const down = Float64Array.from(x);
      up[i]! += h;
      down[i]! -= h;
      expect(g[i]!).toBeCloseTo((f(up) - f(down)) / (2 * h), 5);
    }
  });
});

describe('reluGrad where no engine registered the kernel', () => {
  it('composes standard ops on the cpu backend, with the same values', async () => {
    await tf.setBackend('cpu');
    const { dy, x } = operands(3);
    const dyT = tf.tensor(dy, [2, 3, 5, 3]);
    const xT = tf.tensor(x, [2, 3, 5, 3]);
    resetKernelStats();
    const out = reluGrad(dyT, xT);
    expect(nativeRuns.get(RELU_GRAD) ?? 0).toBe(0);
    expect(bits(out.dataSync() as Float32Array)).toEqual(bits(composedReluGrad(dyT, xT).dataSync() as Float32Array));
    tf.dispose([dyT, xT, out]);
  });
});
