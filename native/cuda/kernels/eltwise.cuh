// Element-wise maps: out[i] = op(in0[i], in1[i], ...) for any functor and any number of inputs of
// 4-byte elements or halves (Half, half_storage.cuh: read as the floats they stand for), each either a
// tensor of the output's shape, a broadcast scalar, or (mapStrided) a view broadcast through strides.
// The element-wise kernel family (eltwise.cu) is built on these; other families can use them for their
// own fused element-wise steps.
//
// Element-wise kernels only move memory, so what matters is how: consecutive threads touch
// consecutive elements (coalesced), 4 elements per access where the pointers allow it (16 bytes, or 8
// of halves: a quarter of the memory instructions), and 32-bit index arithmetic in the broadcast
// kernel, whose divisions would otherwise cost more than its memory traffic.
#pragma once

#include <cstdint>
#include <string>
#include <type_traits>

#include "../launch.h"
#include "../napi.h"
#include "grid.cuh"
#include "half_storage.cuh"

namespace simtrip::cuda {

constexpr unsigned kEltwiseThreads = 256;

// V consecutive elements moved with one memory access (16 bytes for four 4-byte elements).
template <class T, int V>
struct alignas(sizeof(T) * V) Pack {
  T v[V];
};

// The values of a pack of stored elements (halves as floats).
template <int V, class S>
__device__ __forceinline__ Pack<ValueOf<S>, V> loadedPack(const Pack<S, V> &stored) {
  Pack<ValueOf<S>, V> r;
#pragma unroll
  for (int k = 0; k < V; k++) r.v[k] = loaded(stored.v[k]);
  return r;
}

template <int V, class Out, class Op, class... In>
__device__ __forceinline__ Pack<Out, V> applyToPacks(const Op &op, const Pack<In, V> &...in) {
  Pack<Out, V> r;
#pragma unroll
  for (int k = 0; k < V; k++) r.v[k] = storedAs<Out>(op(in.v[k]...));
  return r;
}

template <int V, class T>
__device__ __forceinline__ Pack<T, V> splat(T x) {
  Pack<T, V> r;
#pragma unroll
  for (int k = 0; k < V; k++) r.v[k] = x;
  return r;
}

// An input of a flat map: element i of a tensor (stride 1), or the same value for every i (stride 0).
template <class T>
struct FlatOperand {
  const T *p;
  int stride;

  __device__ __forceinline__ ValueOf<T> at(size_t i) const { return loaded(p[i * stride]); }
  template <int V>
  __device__ __forceinline__ Pack<ValueOf<T>, V> pack(size_t i) const {
    return stride ? loadedPack(reinterpret_cast<const Pack<T, V> *>(p)[i]) : splat<V>(loaded(p[0]));
  }
};

// An input of a strided map: element coord of the output reads p[sum(coord[d] * strides[d])]. The
// dimensions are right-aligned in kMaxRank slots (unused leading slots have stride 0), so the index
// arithmetic unrolls into registers.
template <class T>
struct StridedOperand {
  const T *p;
  int strides[kMaxRank];

  __device__ __forceinline__ uint32_t offset(const uint32_t (&coord)[kMaxRank]) const {
    uint32_t o = 0;
#pragma unroll
    for (int d = 0; d < kMaxRank; d++) o += coord[d] * static_cast<uint32_t>(strides[d]);
    return o;
  }
  // V > 1: the V elements along the innermost dimension from `offset`, which steps by 1 or 0.
  template <int V>
  __device__ __forceinline__ Pack<ValueOf<T>, V> pack(uint32_t offset) const {
    if (V == 1 || strides[kMaxRank - 1] == 0) return splat<V>(loaded(p[offset]));
    return loadedPack(*reinterpret_cast<const Pack<T, V> *>(p + offset));
  }
};

// The output's shape for mapStrided, right-aligned like the operands' strides; `rank` dimensions used.
struct MapShape {
  int rank;
  int dims[kMaxRank];
};

template <int V, class Op, class Out, class... In>
__global__ void __launch_bounds__(kEltwiseThreads) mapFlatKernel(Op op, Out *out, size_t n, FlatOperand<In>... in) {
  const size_t packs = n / V;
  for (size_t i = gridFirst(); i < packs; i += gridStride()) {
    reinterpret_cast<Pack<Out, V> *>(out)[i] = applyToPacks<V, Out>(op, in.template pack<V>(i)...);
  }
  const size_t tail = packs * V + gridFirst();
  if (tail < n) out[tail] = storedAs<Out>(op(in.at(tail)...));
}

// `shape` counts the innermost dimension in packs of V (the host checks it divides).
template <int V, class Op, class Out, class... In>
__global__ void __launch_bounds__(kEltwiseThreads) mapStridedKernel(Op op, Out *out, uint32_t packs, MapShape shape, StridedOperand<In>... in) {
  const uint32_t stride = blockDim.x * gridDim.x;
  for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < packs; i += stride) {
    uint32_t coord[kMaxRank] = {};
    uint32_t rest = i;
#pragma unroll
    for (int d = kMaxRank - 1; d >= 0; d--) {
      if (d < kMaxRank - shape.rank) break;
      const uint32_t dim = static_cast<uint32_t>(shape.dims[d]);
      coord[d] = rest % dim;
      rest /= dim;
    }
    coord[kMaxRank - 1] *= V;
    reinterpret_cast<Pack<Out, V> *>(out)[i] = applyToPacks<V, Out>(op, in.template pack<V>(in.offset(coord))...);
  }
}

// Whether p may be read or written 4 elements at a time.
template <class T>
bool packAligned(const T *p) {
  return reinterpret_cast<uintptr_t>(p) % sizeof(Pack<T, 4>) == 0;
}

template <class T>
constexpr bool kMappable = sizeof(T) == 4 || std::is_same_v<T, Half>;

// out[i] = op(in[i]...) for i < n; each input steps by 1 or 0 (a broadcast scalar).
template <class Op, class Out, class... In>
void mapFlat(const char *name, const Op &op, Out *out, size_t n, FlatOperand<In>... in) {
  static_assert(kMappable<Out> && (kMappable<In> && ...), "element-wise maps move 4-byte elements or halves");
  if (n == 0) return;
  const bool vectorised = packAligned(out) && ((in.stride == 0 || packAligned(in.p)) && ...);
  if (vectorised) {
    launchOver(name, mapFlatKernel<4, Op, Out, In...>, n / 4 + 1, kEltwiseThreads, op, out, n, in...);
  } else {
    launchOver(name, mapFlatKernel<1, Op, Out, In...>, n, kEltwiseThreads, op, out, n, in...);
  }
}

// out (row-major over shape) = op(in...) with each input read through its strides; at most
// kMaxRank dimensions, fewer than 2^31 elements. A rank-1 view whose inputs step by 0 or 1 takes
// the flat kernel.
template <class Op, class Out, class... In>
void mapStrided(const char *name, const Op &op, Out *out, MapShape shape, StridedOperand<In>... in) {
  static_assert(kMappable<Out> && (kMappable<In> && ...), "element-wise maps move 4-byte elements or halves");
  if (shape.rank < 1 || shape.rank > kMaxRank) throw ArgError(std::string(name) + ": rank " + std::to_string(shape.rank) + " outside 1.." + std::to_string(kMaxRank));
  constexpr int last = kMaxRank - 1;
  size_t n = 1;
  for (int d = kMaxRank - shape.rank; d < kMaxRank; d++) {
    if (shape.dims[d] < 0) throw ArgError(std::string(name) + ": negative dimension");
    n *= static_cast<size_t>(shape.dims[d]);
  }
  if (n == 0) return;
  if (shape.rank == 1 && ((in.strides[last] == 0 || in.strides[last] == 1) && ...)) {
    mapFlat(name, op, out, n, FlatOperand<In>{in.p, in.strides[last]}...);
    return;
  }
  if (n > 0x7fffffffu) throw ArgError(std::string(name) + ": broadcasts of 2^31 elements or more are not supported");
  // Four elements per access where every input steps by 0 or 1 along the innermost dimension and a
  // stepping input's rows start aligned for a pack.
  const auto packable = [](const auto &o) {
    if (o.strides[last] == 0) return true;
    if (o.strides[last] != 1 || !packAligned(o.p)) return false;
    for (int d = 0; d < last; d++)
      if (o.strides[d] % 4 != 0) return false;
    return true;
  };
  if (shape.dims[last] % 4 == 0 && packAligned(out) && (packable(in) && ...)) {
    MapShape packed = shape;
    packed.dims[last] /= 4;
    const uint32_t packs = static_cast<uint32_t>(n / 4);
    launchOver(name, mapStridedKernel<4, Op, Out, In...>, packs, kEltwiseThreads, op, out, packs, packed, in...);
  } else {
    launchOver(name, mapStridedKernel<1, Op, Out, In...>, n, kEltwiseThreads, op, out, static_cast<uint32_t>(n), shape, in...);
  }
}

}  // namespace simtrip::cuda
