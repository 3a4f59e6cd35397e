// float32 arithmetic with one rounding per operation, for kernels that must match the cpu backend's
// composed ops bit for bit. nvcc contracts a*b + c into one fused multiply-add (one rounding instead
// of two) unless the operations are written with the _rn intrinsics, which it never contracts. The
// host build compiles in ISO C++ mode for baseline x86-64, where g++ neither contracts nor has FMA.
#pragma once

#include "../compat.h"

namespace simtrip::cuda {

__device__ __forceinline__ float mulRn(float a, float b) {
#ifdef SIMTRIP_HOST_EMU
  return a * b;
#else
  return __fmul_rn(a, b);
#endif
}

__device__ __forceinline__ float addRn(float a, float b) {
#ifdef SIMTRIP_HOST_EMU
  return a + b;
#else
  return __fadd_rn(a, b);
#endif
}

__device__ __forceinline__ float subRn(float a, float b) {
#ifdef SIMTRIP_HOST_EMU
  return a - b;
#else
  return __fsub_rn(a, b);
#endif
}

}  // namespace simtrip::cuda
