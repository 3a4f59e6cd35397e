// Float32 tensors stored as IEEE halves (engine.precision mixed16; see src/engine/cuda/backend.ts):
// the element type kernels template their loads (and a few their stores) on, so that they read such a
// tensor directly instead of a float32 copy made for the call, at half the memory traffic.
//
// Loading a half gives exactly the float it stands for, so a kernel computes the same bits from a
// half-stored tensor as from its float32 copy.
#pragma once

#include <cstdint>
#include <type_traits>

#include "../../shared/half_bits.h"
#include "../compat.h"

namespace simtrip::cuda {

// One element of a half-stored float32 tensor: its IEEE binary16 bits. A type of its own (not
// uint16_t) so that load templates know to read it as the float it stands for.
struct Half {
  uint16_t bits;
};

// The float a half stands for, bit for bit as floatBitsOfHalf (NaN payloads included): normal halves
// and Inf/NaN by rebasing the exponent, subnormals as their integer multiple of 2^-24 (exact in
// float32, and a normal float, so flush-to-zero cannot touch it). No loop, unlike floatBitsOfHalf.
__device__ __forceinline__ float halfValue(Half h) {
  const uint32_t sign = uint32_t(h.bits & 0x8000u) << 16;
  const uint32_t mag = h.bits & 0x7fffu;
  if (mag >= 0x7c00u) return __uint_as_float(sign | 0x7f800000u | ((mag & 0x3ffu) << 13));
  if (mag >= 0x0400u) return __uint_as_float(sign | ((mag << 13) + 0x38000000u));
  return __uint_as_float(sign | __float_as_uint(static_cast<float>(mag) * 5.9604644775390625e-8f));
}

// An element as the value kernels compute with: a half as its float, anything else as itself.
template <class S>
__device__ __forceinline__ S loaded(S s) {
  return s;
}
__device__ __forceinline__ float loaded(Half h) { return halfValue(h); }

template <class S>
using ValueOf = decltype(loaded(std::declval<S>()));

// A value stored as an element of type S. For S = Half the value must be on the half grid (a half
// input passed through, a sign change, a constant checked by the caller): it is then stored exactly.
template <class S, class V>
__device__ __forceinline__ S storedAs(V v) {
  if constexpr (std::is_same_v<S, Half>) {
    return Half{halfBitsOfGridFloat(__float_as_uint(v))};
  } else {
    return v;
  }
}

// Whether a half is Inf or NaN: all exponent bits set.
__device__ __forceinline__ bool isNonFinite(Half h) { return (h.bits & 0x7c00u) == 0x7c00u; }

}  // namespace simtrip::cuda
