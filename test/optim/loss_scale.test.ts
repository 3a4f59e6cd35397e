/**
 * Dynamic loss scaling with GradScaler's rules: skip + back off on non-finite gradients, growth after
 * exactly growthInterval clean steps, the counter reset by an overflow, a checkpoint round-trip; the
 * single-sync finiteness check and the exact unscaling; and a mixed16 step in which a small gradient
 * that flushes to zero without scaling survives with it.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { tf } from '../../src/engine/tf.js';
import { ALL_FINITE } from '../../src/engine/custom_kernels.js';
import { gradsAreFinite, LossScaler, unscaleGrads } from '../../src/optim/loss_scale.js';
import { roundToHalf } from '../../src/ops/fp16_round.js';
import { useCpuBackend } from '../helpers.js';

beforeAll(useCpuBackend);

describe('LossScaler', () => {
  it('starts at 2^16 with GradScaler defaults', () => {
    const s = new LossScaler();
    expect(s.scale).toBe(65536);
    expect(s.growthFactor).toBe(2);
    expect(s.backoffFactor).toBe(0.5);
    expect(s.growthInterval).toBe(2000);
    expect(s.state()).toEqual({ scale: 65536, goodSteps: 0 });
  });

  it('skips the step and halves the scale on non-finite gradients', () => {
    const s = new LossScaler({ initScale: 1024 });
    expect(s.update(false)).toBe(false);
    expect(s.scale).toBe(512);
    expect(s.update(false)).toBe(false);
    expect(s.scale).toBe(256);
    expect(s.update(true)).toBe(true);
    expect(s.scale).toBe(256);
  });

  it('doubles after exactly growthInterval consecutive clean steps, then counts again', () => {
    const s = new LossScaler({ initScale: 8, growthInterval: 5 });
    for (let i = 0; i < 4; i++) expect(s.update(true)).toBe(true);
    expect(s.scale).toBe(8);
    expect(s.update(true)).toBe(true);
    expect(s.scale).toBe(16);
    expect(s.state().goodSteps).toBe(0);
    for (let i = 0; i < 4; i++) s.update(true);
    expect(s.scale).toBe(16);
    s.update(true);
    expect(s.scale).toBe(32);
  });

  it('restarts the clean-step count after an overflow', () => {
    const s = new LossScaler({ initScale: 64, growthInterval: 3 });
    s.update(true);
    s.update(true);
    expect(s.update(false)).toBe(false);
    expect(s.scale).toBe(32);
    s.update(true);
    s.update(true);
    expect(s.scale).toBe(32); // only 2 clean steps since the overflow
    s.update(true);
    expect(s.scale).toBe(64);
  });

  it('never grows past float32 range and never backs off to zero', () => {
    const big = new LossScaler({ initScale: 2 ** 127, growthInterval: 1 });
    big.update(true);
    expect(big.scale).toBe(2 ** 127);
    const small = new LossScaler({ initScale: 2 ** -148 });
    small.update(false);
    small.update(false);
    small.update(false);
    expect(small.scale).toBeGreaterThan(0);
  });

  it('round-trips its state through JSON and rejects a corrupt one', () => {
    const a = new LossScaler({ initScale: 4096, growthInterval: 10 });
    for (let i = 0; i < 7; i++) a.update(true);
    a.update(false);
    a.update(true);
    a.update(true);
    const b = new LossScaler({ growthInterval: 10 });
    b.load(JSON.parse(JSON.stringify(a.state())));
    expect(b.state()).toEqual({ scale: 2048, goodSteps: 2 });
    for (let i = 0; i < 8; i++) {
      a.update(true);
      b.update(true);
    }
    expect(b.state()).toEqual(a.state());
    expect(b.scale).toBe(4096);
    expect(() => b.load({ scale: -1, goodSteps: 0 })).toThrow(/loss scaler state: scale/);
    expect(() => b.load({ scale: 8, goodSteps: 1.5 })).toThrow(/goodSteps/);
    expect(() => b.load(null)).toThrow(RangeError);
    expect(b.state()).toEqual(a.state());
  });

  it('refuses nonsensical options', () => {
    expect(() => new LossScaler({ initScale: 0 })).toThrow(/initScale/);
    expect(() => new LossScaler({ growthFactor: 1 })).toThrow(/growthFactor/);
    expect(() => new LossScaler({ backoffFactor: 1 })).toThrow(/backoffFactor/);
    expect(() => new LossScaler({ growthInterval: 0 })).toThrow(/growthInterval/);
  });
});

describe('gradsAreFinite', () => {
  it('finds one Inf or NaN among many tensors, maps and arrays alike, with one read-back', () => {
    // The cpu backend has no native check: this is the composed path every such backend takes.
    expect(tf.getKernel(ALL_FINITE, tf.getBackend())).toBeUndefined();
    const finite = [tf.ones([3, 4]), tf.tensor1d([3e38, -3e38, 3e38]), tf.scalar(-2)];
    const before = tf.memory().numTensors;
    expect(gradsAreFinite(finite)).toBe(true); // 3e38 + 3e38 would overflow a plain sum
    expect(gradsAreFinite({ a: finite[0]!, b: finite[1]! })).toBe(true);
    expect(gradsAreFinite([])).toBe(true);
    expect(tf.memory().numTensors).toBe(before);
    for (const bad of [Infinity, -Infinity, NaN]) {
      const t = tf.tensor1d([1, bad, 2]);
      expect(gradsAreFinite([...finite, t])).toBe(false);
      expect(gradsAreFinite({ x: t })).toBe(false);
      t.dispose();
    }
    let reads = 0;
    const spy = finite.map((t) => {
      const orig = t.dataSync.bind(t);
      t.dataSync = (() => (reads++, orig())) as typeof t.dataSync;
      return t;
    });
    gradsAreFinite(spy);
    expect(reads).toBe(0);
    tf.dispose(finite);
  });
});

describe('unscaleGrads', () => {
  it('divides every gradient by the scale exactly and keeps the names', () => {
    const grads = { w: tf.tensor1d([65536, 3, -1.5e-3]), b: tf.scalar(2 ** 20) };
    const out = unscaleGrads(grads, 2 ** 16);
    expect(Object.keys(out).sort()).toEqual(['b', 'w']);
    expect(Array.from(out.w!.dataSync())).toEqual([1, 3 / 65536, Math.fround(-1.5e-3) / 65536]);
    expect(out.b!.dataSync()[0]).toBe(16);
    expect(() => unscaleGrads(grads, 0)).toThrow(/scale/);
    tf.dispose([...Object.values(grads), ...Object.values(out)]);
  });
});

describe('loss scaling under fp16 numerics', () => {
  it('keeps a gradient that flushes to zero without it, and skips a step that overflows', () => {
    // loss = 1e-4 * sum(c * round(w)): dL/dw = 1e-4 * c = 3e-9 per element, below half's smallest
    // subnormal (6e-8): without scaling the fp16 gradient is 0.
    const w = tf.variable(tf.tensor1d([1, 2, 3]));
    const c = tf.tensor1d([3e-5, 3e-5, 3e-5]);
    const gradOf = (scale: number) => {
      const { value, grads } = tf.variableGrads(() => tf.mul(tf.mul(tf.sum(tf.mul(c, roundToHalf(w))), 1e-4), scale) as tf.Scalar, [w]);
      value.dispose();
      return grads;
    };
    const plain = gradOf(1);
    expect(Array.from(plain[w.name]!.dataSync())).toEqual([0, 0, 0]);
    const scaler = new LossScaler();
    const scaled = gradOf(scaler.scale);
    expect(gradsAreFinite(scaled)).toBe(true);
    const scaleUsed = scaler.scale;
    expect(scaler.update(true)).toBe(true);
    const unscaled = unscaleGrads(scaled, scaleUsed);
    const g = unscaled[w.name]!.dataSync();
    expect(Math.abs(g[0]! - 3e-9) / 3e-9).toBeLessThan(1e-3);

    // A scale so large the half gradient overflows: Inf, the step is skipped, the scale halves.
    const huge = gradOf(2 ** 50);
    expect(gradsAreFinite(huge)).toBe(false);
    expect(scaler.update(false)).toBe(false);
    expect(scaler.scale).toBe(2 ** 15);
    tf.dispose([w, c, ...Object.values(plain), ...Object.values(scaled), ...Object.values(unscaled), ...Object.values(huge)]);
  });
});
