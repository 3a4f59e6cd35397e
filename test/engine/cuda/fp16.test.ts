/**
 * Mixed-precision kernels on the CUDA host build: SimtripRoundToHalf bit for bit against the reference
 * conversion of src/io/float16.ts (NaN payloads included) over every class of float32 pattern and
 * random ones, its straight-through gradient, and SimtripAllFinite behind gradsAreFinite.
 */
import { describe, expect, it } from 'vitest';
import { tf } from '../../../src/engine/tf.js';
import { fallbackRuns, nativeRuns, resetKernelStats } from '../../../src/engine/kernel_stats.js';
import { float16BitsToFloat32Bits, float32BitsToFloat16Bits } from '../../../src/io/float16.js';
import { HALF_MAX, HALF_MIN_NORMAL, HALF_MIN_SUBNORMAL, HALF_OVERFLOW, ROUND_TO_HALF, roundToHalf } from '../../../src/ops/fp16_round.js';
import { ALL_FINITE } from '../../../src/engine/custom_kernels.js';
import { gradsAreFinite } from '../../../src/optim/loss_scale.js';
import { Rng } from '../../../src/util/rng.js';
import { CUDA_HOST, loadCudaHost } from './helpers.js';

const load = await loadCudaHost();

const reference = (bits: number): number => float16BitsToFloat32Bits(float32BitsToFloat16Bits(bits));
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
const bitsOf = (v: number): number => ((f32[0] = v), u32[0]!);

/** Positive patterns of every class the rounding must get right; each is also tested negated. */
function classPatterns(): number[] {
  const out: number[] = [];
  const around = (b: number) => out.push(b - 1, b, b + 1);
  // Zero, infinity, NaNs (quiet, payload only in dropped bits, payload in kept bits, all ones).
  out.push(0, 0x7f800000, 0x7fc00000, 0x7f800001, 0x7f801fff, 0x7fa00000, 0x7f802000, 0x7fffffff);
  // float32 subnormals and the smallest normal.
  out.push(1, 2, 0x123, 0x3fffff, 0x400000, 0x7fffff, 0x800000);
  // The half-subnormal grid, its ties of both parities, the flush boundary 2^-25, the normal boundary.
  for (let k = 0; k <= 1024; k += 7) out.push(bitsOf(k * HALF_MIN_SUBNORMAL));
  for (let k = 0; k < 1024; k += 5) around(bitsOf((k + 0.5) * HALF_MIN_SUBNORMAL));
  around(bitsOf(2 ** -25));
  around(bitsOf(HALF_MIN_NORMAL));
  // Every half binade: grid points and the ties either way.
  for (let e = -14; e <= 15; e++) {
    for (const k of [0, 1, 2, 511, 512, 1022, 1023]) {
      out.push(bitsOf((1 + k / 1024) * 2 ** e));
      around(bitsOf((1 + (2 * k + 1) / 2048) * 2 ** e));
    }
  }
  // The top: 65504, 65519.99 (stays 65504), the overflow tie 65520 and beyond.
  around(bitsOf(HALF_MAX));
  around(bitsOf(HALF_OVERFLOW));
  out.push(bitsOf(65519.99), bitsOf(65535), bitsOf(65536), bitsOf(1e5), bitsOf(3e38), 0x7f7fffff);
  // Every float32 binade.
  for (let e = 1; e < 255; e++) for (const m of [0, 1, 0x1000, 0x2000, 0x3000, 0x7fffff]) out.push((e << 23) | m);
  return out;
}

function patterns(): Uint32Array {
  const pos = classPatterns();
  const rng = new Rng('cuda-fp16-test');
  const random: number[] = [];
  for (let i = 0; i < 30_000; i++) random.push(rng.nextU32());
  // Uniform patterns mostly miss the half range (float32 exponents 102..142): more inside it.
  for (let i = 0; i < 30_000; i++) random.push((rng.nextU32() & 0x807fffff) | ((100 + rng.int(46)) << 23));
  return Uint32Array.from([...pos, ...pos.map((b) => b | 0x80000000), ...random].map((b) => b >>> 0));
}

describe.skipIf(!load.ok)('SimtripRoundToHalf on the CUDA host build', () => {
  it('equals the reference conversion bit for bit (NaN payloads too), natively', async () => {
    const input = patterns();
    const want = input.map(reference);
    await tf.setBackend(CUDA_HOST);
    resetKernelStats();
    const y = tf.tidy(() => roundToHalf(tf.tensor1d(new Float32Array(input.buffer.slice(0)))).dataSync() as Float32Array);
    const got = new Uint32Array(y.buffer, y.byteOffset, y.length);
    expect(nativeRuns.get(ROUND_TO_HALF)).toBe(1);
    expect(fallbackRuns.size).toBe(0);
    const wrong: string[] = [];
    for (let i = 0; i < input.length && wrong.length < 5; i++) {
      if (got[i] !== want[i]) wrong.push(`0x${input[i]!.toString(16)} -> 0x${got[i]!.toString(16)}, expected 0x${want[i]!.toString(16)}`);
    }
    expect(wrong).toEqual([]);
    // The sweep reaches every class: ±0, flushes, subnormals, 65504 kept, 65520 to Inf, NaN.
    const values = new Float32Array(want.buffer);
    expect(values.some((v, i) => v === HALF_MAX && new Float32Array(input.buffer)[i]! > HALF_MAX)).toBe(true);
    expect(values.some((v) => v !== 0 && Math.abs(v) < HALF_MIN_NORMAL)).toBe(true);
    expect(values.some((v) => v === -Infinity) && values.some((v) => Number.isNaN(v)) && want.includes(0x80000000)).toBe(true);
  });

  it('keeps shapes and empty tensors', async () => {
    await tf.setBackend(CUDA_HOST);
    tf.tidy(() => {
      expect(roundToHalf(tf.zeros([0, 3])).shape).toEqual([0, 3]);
      const x = tf.tensor3d(Float32Array.from({ length: 24 }, (_, i) => i / 7), [2, 3, 4]);
      const y = roundToHalf(x);
      expect(y.shape).toEqual([2, 3, 4]);
      expect(Array.from(y.dataSync())).toEqual(Array.from(x.dataSync(), (v) => new Float32Array(new Uint32Array([reference(bitsOf(v))]).buffer)[0]));
    });
  });

  it('passes the gradient straight through, rounded to the half grid, with the native kernel', async () => {
    await tf.setBackend(CUDA_HOST);
    const w = new Float32Array([0.1, -0.3, 1e5, 1e-9, -1e-9, 3.14159]);
    const x = new Float32Array([1e6, -1e-9, 0.5, 2, -3, 1e-30]);
    resetKernelStats();
    const gx = tf.tidy(() => {
      const f = (a: tf.Tensor) => tf.sum(tf.mul(tf.tensor1d(w), roundToHalf(a)));
      return tf.grad(f)(tf.tensor1d(x)).dataSync() as Float32Array;
    });
    const bits = (a: Float32Array) => [...new Uint32Array(a.buffer.slice(a.byteOffset, a.byteOffset + a.byteLength))];
    expect(bits(gx)).toEqual(bits(w).map(reference));
    expect(nativeRuns.get(ROUND_TO_HALF)).toBe(2);
    expect(fallbackRuns.get(ROUND_TO_HALF)).toBeUndefined();
  });
});

describe.skipIf(!load.ok)('SimtripAllFinite (gradsAreFinite) on the CUDA host build', () => {
  const rng = new Rng('cuda-all-finite');
  // More tensors than one launch takes (64), of mixed sizes, some empty, with huge finite values.
  const shapes = Array.from({ length: 150 }, (_, i) => (i % 17 === 3 ? [0, 4] : i % 5 === 0 ? [] : [1 + (i % 7), 1 + ((i * 13) % 300)]));
  const values = shapes.map((s) => Float32Array.from({ length: s.reduce((a, b) => a * b, 1) }, () => (rng.next() < 0.01 ? 3e38 : rng.normal())));

  async function check(poison?: { tensor: number; index: number; value: number }): Promise<boolean> {
    await tf.setBackend(CUDA_HOST);
    const list = values.map((v, i) => {
      const copy = v.slice();
      if (poison?.tensor === i) copy[poison.index] = poison.value;
      return tf.tensor(copy, shapes[i]);
    });
    const before = tf.memory().numTensors;
    resetKernelStats();
    const result = gradsAreFinite(list);
    expect(nativeRuns.get(ALL_FINITE)).toBe(1);
    expect(fallbackRuns.size).toBe(0);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose(list);
    return result;
  }

  it('is true when every value is finite, even where a plain sum would overflow', async () => {
    expect(await check()).toBe(true);
  });

  for (const value of [Infinity, -Infinity, NaN]) {
    for (const tensor of [1, 70, 149]) {
      it(`finds ${value} in tensor ${tensor} (${tensor < 64 ? 'first' : 'a later'} launch)`, async () => {
        const index = values[tensor]!.length - 1;
        expect(await check({ tensor, index, value })).toBe(false);
      });
    }
  }

  it('a map of gradients and a single scalar', async () => {
    await tf.setBackend(CUDA_HOST);
    const grads = { a: tf.scalar(NaN), b: tf.ones([3]) };
    expect(gradsAreFinite(grads)).toBe(false);
    expect(gradsAreFinite({ b: grads.b })).toBe(true);
    tf.dispose(Object.values(grads));
  });

  it('names an input that is not float32', async () => {
    await tf.setBackend(CUDA_HOST);
    const t = tf.ones([2], 'int32');
    expect(() => tf.engine().runKernel(ALL_FINITE, { x0: t })).toThrow(/float32/);
    t.dispose();
  });
});
