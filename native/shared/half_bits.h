// The float16 rounding both native engines apply (engine.precision mixed16): one definition, compiled
// for the CPU by g++ and for the GPU by nvcc.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define SIMTRIP_HD __host__ __device__
#else
#define SIMTRIP_HD
#endif

namespace simtrip {

// The float32 nearest to `bits` on the IEEE half grid, as bits: round-to-nearest-even to 11
// significant bits for normal halves, to a multiple of 2^-24 below 2^-14, infinity from 65520 (the
// tie between 65504 and 2^16, which goes to the even 2^16), signs kept (a flush to zero gives -0 for a
// negative input). Integer arithmetic on the pattern, so the result does not depend on the FPU's
// rounding mode or flush-to-zero flags. NaN keeps the payload bits a half has room for, or gets the
// quiet bit, exactly as float32BitsToFloat16Bits + float16BitsToFloat32Bits in src/io/float16.ts.
SIMTRIP_HD inline uint32_t roundToHalfBits(uint32_t bits) {
  const uint32_t sign = bits & 0x80000000u;
  const uint32_t mag = bits & 0x7fffffffu;
  if (mag > 0x7f800000u) {
    const uint32_t payload = mag & 0x007fe000u;
    return sign | 0x7f800000u | (payload != 0 ? payload : 0x00400000u);
  }
  if (mag >= 0x477ff000u) return sign | 0x7f800000u;  // |x| >= 65520, Inf included
  if (mag >= 0x38800000u) {
    // Normal half: drop 13 fraction bits, ties to even. A carry out of the fraction moves the value
    // to the next binade with the right encoding (65504 < |x| < 65520 stays 65504, handled above).
    const uint32_t r = mag + 0x0fffu + ((mag >> 13) & 1u);
    return sign | (r & ~0x1fffu);
  }
  // Half subnormal: |x| = m * 2^(e - 150) is q = m * 2^(e - 126) units of 2^-24, rounded. Below
  // e = 102 the value is under 2^-25, half a unit, and goes to zero (float32 subnormals included).
  const uint32_t e = mag >> 23;
  if (e < 102) return sign;
  const uint32_t m = (mag & 0x007fffffu) | 0x00800000u;
  const uint32_t shift = 126 - e;  // 14..24
  uint32_t q = m >> shift;
  const uint32_t rest = m & ((1u << shift) - 1u);
  const uint32_t halfUnit = 1u << (shift - 1);
  if (rest > halfUnit || (rest == halfUnit && (q & 1u) != 0)) q++;
  // q <= 1024, so q * 2^-24 is exact in float32.
  const float v = static_cast<float>(q) * 5.9604644775390625e-8f;
  uint32_t out;
  std::memcpy(&out, &v, sizeof out);
  return sign | out;
}

// The IEEE half with exactly the value of `bits`, a float32 already on the half grid (an output of
// roundToHalfBits): sign, exponent rebased from 127 to 15, the top 10 fraction bits; half subnormals
// (below 2^-14) become a multiple of 2^-24; Inf and NaN keep the payload bits a half has room for.
SIMTRIP_HD inline uint16_t halfBitsOfGridFloat(uint32_t bits) {
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const uint32_t mag = bits & 0x7fffffffu;
  if (mag >= 0x7f800000u) return static_cast<uint16_t>(sign | 0x7c00u | ((mag & 0x007fe000u) >> 13));
  if (mag >= 0x38800000u) return static_cast<uint16_t>(sign | ((mag - 0x38000000u) >> 13));
  if (mag == 0) return sign;
  // A subnormal half: value = q * 2^-24 with q < 1024, computed from the float's own exponent.
  const uint32_t e = mag >> 23;
  const uint32_t m = (mag & 0x007fffffu) | 0x00800000u;
  return static_cast<uint16_t>(sign | (m >> (126 - e)));
}

// The float32 bits of a half: exact for every half, NaN payloads included.
SIMTRIP_HD inline uint32_t floatBitsOfHalf(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t frac = h & 0x3ffu;
  if (exp == 0x1fu) return sign | 0x7f800000u | (frac << 13);
  if (exp != 0) return sign | ((exp + 112u) << 23) | (frac << 13);
  if (frac == 0) return sign;
  // Subnormal: normalise the fraction into a float32 exponent.
  uint32_t shift = 0;
  uint32_t f = frac;
  while (!(f & 0x400u)) {
    f <<= 1;
    shift++;
  }
  return sign | ((113u - shift) << 23) | ((f & 0x3ffu) << 13);
}

}  // namespace simtrip
