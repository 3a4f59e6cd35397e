// Flat indices over NHWC tensors (activations in the conv and pool kernels). Decomposing an index
// costs three integer divisions per element; in 32 bits that is a few instructions, in 64 bits a long
// software sequence, so kernels are instantiated for both and launched with 32-bit indices whenever
// the tensor allows (always, in practice).
#pragma once

#include "grid.cuh"

namespace simtrip::cuda {

template <class Index>
struct NhwcPos {
  Index b;
  int y, x, c;
};

// Element i of a [*, h, w, c] tensor.
template <class Index>
__device__ __forceinline__ NhwcPos<Index> nhwcPos(Index i, int h, int w, int c) {
  NhwcPos<Index> p;
  Index rest = i / Index(c);
  p.c = static_cast<int>(i - rest * Index(c));
  const Index row = rest / Index(w);
  p.x = static_cast<int>(rest - row * Index(w));
  p.b = row / Index(h);
  p.y = static_cast<int>(row - p.b * Index(h));
  return p;
}

template <class Index>
__device__ __forceinline__ Index nhwcOffset(Index b, int y, int x, int c, int h, int w, int channels) {
  return ((b * Index(h) + Index(y)) * Index(w) + Index(x)) * Index(channels) + Index(c);
}

// Whether a grid-stride loop over n elements can count in 32 bits (the stride added to the last index
// included: grids are capped far below 2^31 threads).
inline bool fitsIndex32(size_t n) { return n < (size_t(1) << 31); }

// f(Index{}) with the narrowest index type that counts to n: launch kernel<Index> inside.
template <class F>
void withIndexType(size_t n, F &&f) {
  if (fitsIndex32(n)) {
    f(uint32_t{});
  } else {
    f(size_t{});
  }
}

}  // namespace simtrip::cuda
