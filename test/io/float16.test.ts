import { describe, expect, it } from 'vitest';
import {
  bfloat16ArrayToFloat32,
  bfloat16BitsToFloat32,
  float16ArrayToFloat32,
  float16BitsToFloat32,
  float16BitsToFloat32Bits,
  float32ArrayToBfloat16,
  float32ArrayToFloat16,
  float32BitsToBfloat16Bits,
  float32BitsToFloat16Bits,
  float32ToBfloat16Bits,
  float32ToFloat16Bits,
  roundToFloat16,
  roundToFloat16InPlace,
} from '../../src/io/float16.js';

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
function bitsOf(x: number): number {
  f32[0] = x;
  return u32[0]!;
}
function floatOf(bits: number): number {
  u32[0] = bits;
  return f32[0]!;
}

function isHalfNaN(h: number): boolean {
  return (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
}

/** Every finite non-negative half value, ascending (bit patterns 0..0x7bff are monotonic). */
const positiveHalves = Array.from({ length: 0x7c00 }, (_, h) => float16BitsToFloat32(h));

/**
 * Independent reference rounding: binary search for the neighbouring halves and compare distances in
 * double precision (exact here: both are float32 values within a few binades of each other).
 */
function referenceHalfBits(x: number): number {
  if (Number.isNaN(x)) return 0x7e00;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  // 65520 is the midpoint between 65504 and the next (unrepresentable) step 65536: ties go to "even" inf.
  if (a >= 65520) return sign | 0x7c00;
  let lo = 0;
  let hi = positiveHalves.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (positiveHalves[mid]! <= a) lo = mid;
    else hi = mid - 1;
  }
  if (positiveHalves[lo] === a || lo === positiveHalves.length - 1) return sign | lo;
  const below = a - positiveHalves[lo]!;
  const above = positiveHalves[lo + 1]! - a;
  if (below < above) return sign | lo;
  if (above < below) return sign | (lo + 1);
  return sign | (lo % 2 === 0 ? lo : lo + 1);
}

describe('float16', () => {
  it('decodes known bit patterns', () => {
    expect(float16BitsToFloat32(0x3c00)).toBe(1);
    expect(float16BitsToFloat32(0xc000)).toBe(-2);
    expect(float16BitsToFloat32(0x7bff)).toBe(65504);
    expect(float16BitsToFloat32(0x0400)).toBe(2 ** -14);
    expect(float16BitsToFloat32(0x0001)).toBe(2 ** -24);
    expect(float16BitsToFloat32(0x03ff)).toBe(1023 * 2 ** -24);
    expect(Object.is(float16BitsToFloat32(0x8000), -0)).toBe(true);
    expect(float16BitsToFloat32(0x7c00)).toBe(Infinity);
    expect(float16BitsToFloat32(0xfc00)).toBe(-Infinity);
    expect(float16BitsToFloat32(0x7e00)).toBeNaN();
  });

  it('round-trips all 65536 bit patterns exactly at the bit level (NaN payloads included)', () => {
    for (let h = 0; h < 65536; h++) {
      const back = float32BitsToFloat16Bits(float16BitsToFloat32Bits(h));
      if (back !== h) throw new Error(`0x${h.toString(16)} came back as 0x${back.toString(16)}`);
    }
  });

  it('round-trips all 65536 patterns through JS numbers; NaNs stay NaN', () => {
    for (let h = 0; h < 65536; h++) {
      const back = float32ToFloat16Bits(float16BitsToFloat32(h));
      const ok = isHalfNaN(h) ? isHalfNaN(back) && (back & 0x8000) === (h & 0x8000) : back === h;
      if (!ok) throw new Error(`0x${h.toString(16)} came back as 0x${back.toString(16)}`);
    }
  });

  it('encodes exact values', () => {
    expect(float32ToFloat16Bits(1)).toBe(0x3c00);
    expect(float32ToFloat16Bits(-2)).toBe(0xc000);
    expect(float32ToFloat16Bits(65504)).toBe(0x7bff);
    expect(float32ToFloat16Bits(0.1)).toBe(0x2e66);
    expect(float32ToFloat16Bits(-0)).toBe(0x8000);
    expect(float32ToFloat16Bits(Infinity)).toBe(0x7c00);
    expect(float32ToFloat16Bits(-Infinity)).toBe(0xfc00);
    expect(isHalfNaN(float32ToFloat16Bits(NaN))).toBe(true);
  });

  it('rounds ties to even in the normal range', () => {
    const ulp = 2 ** -10;
    expect(float32ToFloat16Bits(1 + ulp / 2)).toBe(0x3c00); // tie, 0x3c00 is even
    expect(float32ToFloat16Bits(1 + ulp * 1.5)).toBe(0x3c02); // tie, 0x3c01 is odd
    expect(float32ToFloat16Bits(floatOf(bitsOf(1 + ulp / 2) + 1))).toBe(0x3c01); // just above the tie
    expect(float32ToFloat16Bits(floatOf(bitsOf(1 + ulp * 1.5) - 1))).toBe(0x3c01); // just below the tie
    expect(float32ToFloat16Bits(2 - ulp / 4)).toBe(0x4000); // carry into the next binade
  });

  it('overflows to infinity exactly at 65504 + half an ulp', () => {
    expect(float32ToFloat16Bits(65519)).toBe(0x7bff);
    expect(float32ToFloat16Bits(floatOf(bitsOf(65520) - 1))).toBe(0x7bff);
    expect(float32ToFloat16Bits(65520)).toBe(0x7c00); // tie: the odd 0x7bff loses to infinity
    expect(float32ToFloat16Bits(-65520)).toBe(0xfc00);
    expect(float32ToFloat16Bits(1e10)).toBe(0x7c00);
    expect(float32ToFloat16Bits(3.4e38)).toBe(0x7c00);
  });

  it('handles subnormals and underflow', () => {
    expect(float32ToFloat16Bits(2 ** -24)).toBe(0x0001);
    expect(float32ToFloat16Bits(2 ** -25)).toBe(0x0000); // tie between 0 and 2^-24: even is 0
    expect(float32ToFloat16Bits(-(2 ** -25))).toBe(0x8000);
    expect(float32ToFloat16Bits(floatOf(bitsOf(2 ** -25) + 1))).toBe(0x0001);
    expect(float32ToFloat16Bits(3 * 2 ** -25)).toBe(0x0002); // tie between 1 and 2 units
    expect(float32ToFloat16Bits(2 ** -14 - 2 ** -25)).toBe(0x0400); // tie into the smallest normal
    expect(float32ToFloat16Bits(2 ** -26)).toBe(0x0000);
    expect(float32ToFloat16Bits(floatOf(1))).toBe(0x0000); // float32 subnormal
    expect(float32ToFloat16Bits(-floatOf(0x007fffff))).toBe(0x8000);
  });

  it('matches a reference rounding at every half midpoint and its float32 neighbours', () => {
    for (let h = 0; h < 0x7bff; h++) {
      const mid = (positiveHalves[h]! + positiveHalves[h + 1]!) / 2; // exact in float32
      const midBits = bitsOf(mid);
      for (const bits of [midBits - 1, midBits, midBits + 1]) {
        for (const sign of [0, 0x80000000]) {
          const x = floatOf((bits | sign) >>> 0);
          const got = float32BitsToFloat16Bits((bits | sign) >>> 0);
          if (got !== referenceHalfBits(x)) throw new Error(`${x}: got 0x${got.toString(16)}`);
        }
      }
    }
  });

  it('matches the reference rounding on pseudo-random float32 bit patterns', () => {
    let state = 12345;
    for (let i = 0; i < 200_000; i++) {
      state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
      // Concentrate on exponents around the half range, where all the interesting cases are.
      const bits = ((state & 0x807fffff) | (((state >>> 23) % 48) + 95) << 23) >>> 0;
      const got = float32BitsToFloat16Bits(bits);
      const want = referenceHalfBits(floatOf(bits));
      if (got !== want) throw new Error(`0x${bits.toString(16)}: got 0x${got.toString(16)} want 0x${want.toString(16)}`);
    }
  });

  it('converts arrays, respecting subarray offsets', () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const decoded = float16ArrayToFloat32(all);
    const decodedBits = new Uint32Array(decoded.buffer);
    for (let h = 0; h < 65536; h++) {
      if (decodedBits[h] !== float16BitsToFloat32Bits(h)) throw new Error(`mismatch at ${h}`);
    }
    expect(float32ArrayToFloat16(decoded)).toEqual(all);
    const backing = new Float32Array([7, 1, -2, 65504, 1e-8]);
    expect([...float32ArrayToFloat16(backing.subarray(1))]).toEqual([0x3c00, 0xc000, 0x7bff, 0x0000]);
  });

  it('rounds values to the half grid in place', () => {
    const values = new Float32Array([1 + 2 ** -11, 0.1, 70000, 2 ** -25, -3]);
    roundToFloat16InPlace(values);
    expect([...values]).toEqual([1, float16BitsToFloat32(0x2e66), Infinity, 0, -3]);
    expect(roundToFloat16(1 + 3 * 2 ** -11)).toBe(1 + 2 ** -9);
  });
});

describe('bfloat16', () => {
  it('round-trips all 65536 bit patterns', () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    expect(float32ArrayToBfloat16(bfloat16ArrayToFloat32(all))).toEqual(all);
    expect(bfloat16BitsToFloat32(0x3f80)).toBe(1);
    expect(bfloat16BitsToFloat32(0xc049)).toBe(-3.140625);
    expect(bfloat16BitsToFloat32(0x0001)).toBe(2 ** -133);
  });

  it('rounds to nearest even and overflows to infinity', () => {
    expect(float32ToBfloat16Bits(1)).toBe(0x3f80);
    expect(float32BitsToBfloat16Bits(0x3f808000)).toBe(0x3f80); // tie, even
    expect(float32BitsToBfloat16Bits(0x3f818000)).toBe(0x3f82); // tie, odd rounds up
    expect(float32BitsToBfloat16Bits(0x3f808001)).toBe(0x3f81);
    expect(float32BitsToBfloat16Bits(0x3f807fff)).toBe(0x3f80);
    expect(float32BitsToBfloat16Bits(0x7f7fffff)).toBe(0x7f80);
    expect(float32BitsToBfloat16Bits(0xff7fffff)).toBe(0xff80);
    expect(float32BitsToBfloat16Bits(0x80000001)).toBe(0x8000);
  });

  it('keeps NaN a NaN even when its payload is only in the dropped bits', () => {
    const h = float32BitsToBfloat16Bits(0x7f800001);
    expect(bfloat16BitsToFloat32(h)).toBeNaN();
    expect(bfloat16BitsToFloat32(float32ToBfloat16Bits(NaN))).toBeNaN();
  });
});
