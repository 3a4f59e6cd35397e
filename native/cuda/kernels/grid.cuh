// Index helpers every kernel shares.
#pragma once

#include "../compat.h"

namespace simtrip::cuda {

// The elements this thread visits in a grid-stride loop: for (size_t i = first(); i < n; i += stride()).
__device__ __forceinline__ size_t gridFirst() { return size_t(blockIdx.x) * blockDim.x + threadIdx.x; }
__device__ __forceinline__ size_t gridStride() { return size_t(blockDim.x) * gridDim.x; }

// The warp width for host code: `warpSize` is a device built-in, and host code that names it leaves
// the GPU addon with an undefined symbol.
constexpr int kWarpSize = 32;

// Up to this many dimensions in the strided kernels (transpose, broadcast, slice): tfjs tensors in
// simtrip's models have at most 5, and the TS side merges adjacent dimensions first.
constexpr int kMaxRank = 6;

// A shape and one operand's strides (0 where the operand is broadcast), passed by value to kernels.
struct Strided {
  int rank;
  int shape[kMaxRank];
  long long strides[kMaxRank];
};

// The offset in the operand of output element `i` (row-major over shape).
__device__ __forceinline__ long long stridedOffset(const Strided &s, size_t i) {
  long long offset = 0;
  for (int d = s.rank - 1; d >= 0; d--) {
    const size_t dim = static_cast<size_t>(s.shape[d]);
    offset += static_cast<long long>(i % dim) * s.strides[d];
    i /= dim;
  }
  return offset;
}

}  // namespace simtrip::cuda
