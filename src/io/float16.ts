/**
 * Exact conversions between float32 and the two 16-bit float formats (IEEE half and bfloat16).
 *
 * Everything is done on bit patterns: tfjs has no float16 dtype, so mixed precision is emulated by
 * rounding float32 values to the half grid, and that emulation is only faithful if the rounding is
 * exactly IEEE round-to-nearest-even, including subnormals, overflow and NaN.
 */

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

function floatToBits(value: number): number {
  f32Scratch[0] = value;
  return u32Scratch[0]!;
}

function bitsToFloat(bits: number): number {
  u32Scratch[0] = bits;
  return f32Scratch[0]!;
}

/**
 * `m >> shift` rounded to nearest, ties to even. A carry out of the kept bits is wanted: it moves a
 * value to the next binade (or to infinity) with the correct encoding.
 */
function shiftRightRoundEven(m: number, shift: number): number {
  const kept = m >>> shift;
  const rest = m - kept * 2 ** shift;
  const half = 2 ** (shift - 1);
  return rest > half || (rest === half && (kept & 1) === 1) ? kept + 1 : kept;
}

const F32_EXP_MASK = 0x7f800000;
const F32_MANT_MASK = 0x007fffff;
const F16_INF = 0x7c00;
/** Quiet bit of a half NaN: used when a float32 NaN's payload lives only in bits a half drops. */
const F16_QUIET = 0x0200;

/** Bit pattern of a float32 (given as its bits) rounded to half precision. */
export function float32BitsToFloat16Bits(bits: number): number {
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits & F32_EXP_MASK) >>> 23;
  const mant = bits & F32_MANT_MASK;
  if (exp === 0xff) {
    if (mant === 0) return sign | F16_INF;
    return sign | F16_INF | (mant >>> 13 || F16_QUIET);
  }
  const e = exp - 127;
  if (e > 15) return sign | F16_INF;
  if (e >= -14) {
    // Normal range: a rounding carry into exponent 31 yields exactly 0x7c00, i.e. infinity.
    return sign | shiftRightRoundEven(((e + 15) << 23) | mant, 13);
  }
  // Subnormal half: the unit is 2^-24, so the 24-bit significand shifts right by -e-1 bits.
  const shift = -e - 1;
  if (shift > 24) return sign;
  // A float32 subnormal (exp 0) has shift > 24 and is handled above, so the implicit bit is always 1.
  return sign | shiftRightRoundEven(mant | 0x00800000, shift);
}

/** Bit pattern of the float32 equal to the given half (exact: every half is a float32). */
export function float16BitsToFloat32Bits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >>> 10) & 0x1f;
  let mant = h & 0x3ff;
  if (exp === 0x1f) return (sign | F32_EXP_MASK | (mant << 13)) >>> 0;
  if (exp !== 0) return (sign | ((exp - 15 + 127) << 23) | (mant << 13)) >>> 0;
  if (mant === 0) return sign >>> 0;
  let e = -14;
  while ((mant & 0x400) === 0) {
    mant <<= 1;
    e--;
  }
  return (sign | ((e + 127) << 23) | ((mant & 0x3ff) << 13)) >>> 0;
}

/** Bit pattern of a float32 (given as its bits) rounded to bfloat16, ties to even. */
export function float32BitsToBfloat16Bits(bits: number): number {
  const sign = (bits >>> 16) & 0x8000;
  const magnitude = bits & 0x7fffffff;
  if (magnitude > F32_EXP_MASK) {
    return sign | (magnitude >>> 16) | ((magnitude & 0xffff0000) === F32_EXP_MASK ? 0x40 : 0);
  }
  return sign | shiftRightRoundEven(magnitude, 16);
}

export function float32ToFloat16Bits(value: number): number {
  return float32BitsToFloat16Bits(floatToBits(value));
}

export function float16BitsToFloat32(h: number): number {
  return bitsToFloat(float16BitsToFloat32Bits(h));
}

export function float32ToBfloat16Bits(value: number): number {
  return float32BitsToBfloat16Bits(floatToBits(value));
}

export function bfloat16BitsToFloat32(h: number): number {
  return bitsToFloat((h << 16) >>> 0);
}

/** The nearest half-precision value (as a number): the rounding step of fp16 emulation. */
export function roundToFloat16(value: number): number {
  return float16BitsToFloat32(float32ToFloat16Bits(value));
}

/** Lazily built: a table turns the per-element half decode of a large checkpoint into one lookup. */
let halfTable: Uint32Array | undefined;

function float16Table(): Uint32Array {
  if (!halfTable) {
    halfTable = new Uint32Array(65536);
    for (let h = 0; h < 65536; h++) halfTable[h] = float16BitsToFloat32Bits(h);
  }
  return halfTable;
}

/** Decodes half bit patterns; bit-exact, NaN payloads included (works on bits, not numbers). */
export function float16ArrayToFloat32(src: Uint16Array): Float32Array {
  const table = float16Table();
  const out = new Uint32Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = table[src[i]!]!;
  return new Float32Array(out.buffer);
}

export function float32ArrayToFloat16(src: Float32Array): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = float32BitsToFloat16Bits(bits[i]!);
  return out;
}

export function bfloat16ArrayToFloat32(src: Uint16Array): Float32Array {
  const out = new Uint32Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = (src[i]! << 16) >>> 0;
  return new Float32Array(out.buffer);
}

export function float32ArrayToBfloat16(src: Float32Array): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = float32BitsToBfloat16Bits(bits[i]!);
  return out;
}

/** Rounds every element to the half grid in place (values only: NaN payloads may change). */
export function roundToFloat16InPlace(values: Float32Array): Float32Array {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  for (let i = 0; i < bits.length; i++) {
    bits[i] = float16BitsToFloat32Bits(float32BitsToFloat16Bits(bits[i]!));
  }
  return values;
}
