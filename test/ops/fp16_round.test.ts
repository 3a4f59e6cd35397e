/**
 * roundToHalf against the bit-level reference conversion (src/io/float16.ts) in every implementation:
 * the cpu JS kernel, the native onednn kernel and the standard-ops fallback on both backends, over
 * every float32 bit-pattern class (zeros, both infinities, NaNs, float32 subnormals, the half-subnormal
 * grid and its ties, normals and ties of both parities in every half binade, the overflow boundary,
 * every float32 binade) plus 400,000 random patterns. Then the straight-through gradient.
 */
// helpers first: it loads tfjs-core (CommonJS) before src/engine/tf.ts pulls in the ESM gradient files.
import { useCpuBackend } from '../helpers.js';
import { beforeAll, describe, expect, it } from 'vitest';
import { tf } from '../../src/engine/tf.js';
import { loadOnednn } from '../../src/engine/onednn/loader.js';
import { nativeRuns } from '../../src/engine/kernel_stats.js';
import { float16BitsToFloat32Bits, float32BitsToFloat16Bits } from '../../src/io/float16.js';
import { HALF_MAX, HALF_OVERFLOW, ROUND_TO_HALF, roundToHalf, roundToHalfComposed } from '../../src/ops/fp16_round.js';
import { Rng } from '../../src/util/rng.js';

await useCpuBackend();
const onednn = await loadOnednn();
if (!onednn.ok) console.warn(`onednn roundToHalf tests skipped: ${onednn.reason} (${onednn.hint})`);

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
const bitsOf = (v: number): number => ((f32[0] = v), u32[0]!);

const reference = (bits: number): number => float16BitsToFloat32Bits(float32BitsToFloat16Bits(bits));

/** Positive patterns of every class; each is also tested negated. */
function classPatterns(): number[] {
  const out: number[] = [];
  const around = (bits: number) => out.push(bits - 1, bits, bits + 1);
  // Zero, infinity, NaNs: quiet, payload only in bits a half drops, payload in the kept bits, all ones.
  out.push(0, 0x7f800000, 0x7fc00000, 0x7f800001, 0x7f801fff, 0x7fa00000, 0x7f802000, 0x7fffffff);
  // float32 subnormals and the smallest normal.
  out.push(1, 2, 0x123, 0x3fffff, 0x400000, 0x7fffff, 0x800000);
  // The half-subnormal grid k * 2^-24 (every k), the ties (k + 1/2) * 2^-24 of both parities with
  // their float32 neighbours, and the flush boundary 2^-25 (a tie that goes to 0).
  for (let k = 0; k <= 1024; k++) out.push(bitsOf(k * 2 ** -24));
  for (let k = 0; k < 1024; k++) around(bitsOf((k + 0.5) * 2 ** -24));
  around(bitsOf(2 ** -25));
  around(bitsOf(2 ** -14));
  // Every half binade 2^-14 .. 2^15: grid points, ties between odd/even neighbours both ways, and the
  // float32 values either side of each tie.
  for (let e = -14; e <= 15; e++) {
    for (const k of [0, 1, 2, 3, 511, 512, 513, 1021, 1022, 1023]) {
      out.push(bitsOf((1 + k / 1024) * 2 ** e));
      around(bitsOf((1 + (2 * k + 1) / 2048) * 2 ** e));
    }
  }
  // The top of the range: the largest half, the overflow tie 65520 and beyond.
  around(bitsOf(HALF_MAX));
  around(bitsOf(HALF_OVERFLOW));
  out.push(bitsOf(65535), bitsOf(65536), bitsOf(1e5), bitsOf(3e38), 0x7f7fffff);
  // Every float32 binade, a few significands each.
  for (let e = 1; e < 255; e++) for (const m of [0, 1, 0x1000, 0x2000, 0x3000, 0x400000, 0x7fffff]) out.push((e << 23) | m);
  return out;
}

function randomPatterns(): number[] {
  const rng = new Rng('fp16-round-test');
  const out: number[] = [];
  for (let i = 0; i < 300_000; i++) out.push(rng.nextU32());
  // Uniform patterns mostly miss the half range (float32 exponents 102..142): 100k more inside it.
  for (let i = 0; i < 100_000; i++) out.push((rng.nextU32() & 0x807fffff) | ((100 + rng.int(46)) << 23));
  return out;
}

const patterns = (() => {
  const pos = classPatterns();
  return Uint32Array.from([...pos, ...pos.map((b) => b | 0x80000000), ...randomPatterns()].map((b) => b >>> 0));
})();
const expected = patterns.map(reference);

type Impl = { name: string; backend: 'cpu' | 'onednn'; fn: (x: tf.Tensor) => tf.Tensor; nativeKernel?: boolean; exactNaN: boolean };

const IMPLS: Impl[] = [
  { name: 'cpu JS kernel', backend: 'cpu', fn: roundToHalf, exactNaN: true },
  { name: 'standard-ops fallback on cpu', backend: 'cpu', fn: roundToHalfComposed, exactNaN: false },
  { name: 'onednn native kernel', backend: 'onednn', fn: roundToHalf, nativeKernel: true, exactNaN: true },
  { name: 'standard-ops fallback on onednn', backend: 'onednn', fn: roundToHalfComposed, exactNaN: false },
];

async function use(backend: Impl['backend']): Promise<void> {
  if (backend === 'cpu') await useCpuBackend();
  else await tf.setBackend('onednn');
}

function run(impl: Impl, bits: Uint32Array): Uint32Array {
  return tf.tidy(() => {
    const x = tf.tensor1d(new Float32Array(bits.buffer.slice(0)), 'float32');
    const y = impl.fn(x).dataSync() as Float32Array;
    return new Uint32Array(y.buffer.slice(y.byteOffset, y.byteOffset + y.byteLength));
  });
}

const isNaNBits = (b: number): boolean => (b & 0x7fffffff) > 0x7f800000;

describe('the test patterns', () => {
  it('cover the classes the rounding has to get right', () => {
    const values = new Float32Array(expected.buffer);
    const inputs = new Float32Array(patterns.buffer);
    expect(values.some((v) => v === Infinity) && values.some((v) => v === -Infinity)).toBe(true);
    expect(expected.some((b) => b === 0x80000000)).toBe(true); // -0
    expect(values.some((v, i) => v === 0 && inputs[i] !== 0)).toBe(true); // flush to zero
    expect(values.some((v) => v !== 0 && Math.abs(v) < 2 ** -14)).toBe(true); // half subnormals
    expect(values.some((v, i) => Number.isFinite(inputs[i]!) && Math.abs(inputs[i]!) >= HALF_OVERFLOW && v === Infinity)).toBe(true);
    expect(values.some((v) => Number.isNaN(v))).toBe(true);
    expect(patterns.length).toBeGreaterThan(400_000);
  });
});

describe.each(IMPLS)('roundToHalf: $name', (impl) => {
  const skip = impl.backend === 'onednn' && !onednn.ok;

  it.skipIf(skip)('equals the reference conversion on every pattern', async () => {
    await use(impl.backend);
    const before = nativeRuns.get(ROUND_TO_HALF) ?? 0;
    const got = run(impl, patterns);
    if (impl.nativeKernel) expect(nativeRuns.get(ROUND_TO_HALF) ?? 0).toBeGreaterThan(before);
    const wrong: string[] = [];
    for (let i = 0; i < patterns.length && wrong.length < 5; i++) {
      const ok = got[i] === expected[i] || (!impl.exactNaN && isNaNBits(got[i]!) && isNaNBits(expected[i]!));
      if (!ok) wrong.push(`0x${patterns[i]!.toString(16)} -> 0x${got[i]!.toString(16)}, expected 0x${expected[i]!.toString(16)}`);
    }
    expect(wrong).toEqual([]);
  });

  it.skipIf(skip)('passes the gradient straight through, rounded to the half grid', async () => {
    await use(impl.backend);
    // Weights off the grid, beyond the half range (gradient Inf) and below half the smallest
    // subnormal (gradient ±0); x includes values whose forward overflows or flushes, where the
    // gradient must still flow (no zeroing: the cast back to fp32 does not mask anything).
    const w = new Float32Array([0.1, -0.3, 1e5, 1e-9, -1e-9, 3.14159, 2 ** -24 * 1.5, -7e4]);
    const x = new Float32Array([1e6, -1e-9, 0.5, 2, -3, 1e-30, 70000, -1]);
    const before = tf.memory().numTensors;
    const [gx, gw] = tf.tidy(() => {
      const f = (a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(b, impl.fn(a)));
      return tf.grads(f)([tf.tensor1d(x), tf.tensor1d(w)]).map((g) => g.dataSync() as Float32Array);
    });
    expect(tf.memory().numTensors).toBe(before);
    const bits = (a: Float32Array) => [...new Uint32Array(a.buffer.slice(a.byteOffset, a.byteOffset + a.byteLength))];
    // d/dx = w on the half grid; d/dw = round(x), the forward value (not rounded again: already on it).
    expect(bits(gx!)).toEqual(bits(w).map(reference));
    expect(bits(gw!)).toEqual(bits(x).map(reference));
    expect(gx![2]).toBe(Infinity);
    expect(Object.is(gx![4], -0)).toBe(true);
    // The incoming gradient itself was rounded: 0.1 is not on the half grid.
    expect(gx![0]).not.toBe(Math.fround(0.1));
  });

  it.skipIf(skip)('rounds twice to the same value and keeps shapes', async () => {
    await use(impl.backend);
    tf.tidy(() => {
      const x = tf.randomNormal([3, 4, 5], 0, 100, 'float32', 7);
      const once = impl.fn(x);
      expect(once.shape).toEqual([3, 4, 5]);
      expect(impl.fn(once).dataSync()).toEqual(once.dataSync());
      expect(once.dataSync()).not.toEqual(x.dataSync());
    });
  });
});

describe('roundToHalf input checks', () => {
  beforeAll(useCpuBackend);
  it('refuses non-float32 tensors with a clear error', () => {
    const x = tf.tensor1d([1, 2], 'int32');
    expect(() => roundToHalf(x)).toThrow(/expected a float32 tensor, got int32/);
    expect(() => roundToHalfComposed(x)).toThrow(/float32/);
    x.dispose();
  });
});
