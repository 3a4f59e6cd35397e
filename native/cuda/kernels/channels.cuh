// Kernels over channels-last tensors viewed as [segments][rows][channels]: NHWC is one segment of
// N*H*W rows for batch norm, N segments of H*W rows for group norm. A thread owns V adjacent channels
// of one segment and walks the rows, so a warp reads whole rows (coalesced), per-channel constants
// stay in registers and no element needs an index division.
//
// Grid: x over packs of V channels, y over chunks of rows, z over segments.
#pragma once

#include <algorithm>

#include "../compat.h"
#include "../runtime.h"
#include "half_storage.cuh"

namespace simtrip::cuda {

// Threads per block of every column kernel (mergeOverY's shared memory is sized for it).
constexpr unsigned kColumnThreads = 256;

// V floats moved as one access: a 16-byte load or store for V = 4.
template <int V>
struct alignas(4 * V) Pack {
  float v[V];
};

template <int V>
__device__ __forceinline__ Pack<V> loadPack(const float *p) {
  return *reinterpret_cast<const Pack<V> *>(p);
}

// V elements of a half-stored tensor, moved as one access (8 bytes for V = 4) and read as floats.
template <int V>
struct alignas(2 * V) HalfPack {
  Half v[V];
};

template <int V>
__device__ __forceinline__ Pack<V> loadPack(const Half *p) {
  const HalfPack<V> h = *reinterpret_cast<const HalfPack<V> *>(p);
  Pack<V> r;
  for (int k = 0; k < V; k++) r.v[k] = halfValue(h.v[k]);
  return r;
}

template <int V>
__device__ __forceinline__ void storePack(float *p, const Pack<V> &value) {
  *reinterpret_cast<Pack<V> *>(p) = value;
}

// The first channel of this thread's pack, and its rows: r = firstRow(); r < rows; r += rowStride().
__device__ __forceinline__ int packChannel(int v) { return (blockIdx.x * blockDim.x + threadIdx.x) * v; }
__device__ __forceinline__ size_t firstRow() { return size_t(blockIdx.y) * blockDim.y + threadIdx.y; }
__device__ __forceinline__ size_t rowStride() { return size_t(gridDim.y) * blockDim.y; }

// Merges the accumulators of the threads that share threadIdx.x (one pack of columns) across
// threadIdx.y, in a fixed tree order so that the result does not depend on scheduling; the threads
// with threadIdx.y == 0 end with the totals. Every thread of the block must call it (it has barriers).
template <int V, class T, class Merge>
__device__ __forceinline__ void mergeOverY(T (&acc)[V], Merge merge) {
  __shared__ T cells[kColumnThreads * V];
  const unsigned tid = threadIdx.y * blockDim.x + threadIdx.x;
  for (unsigned half = blockDim.y / 2; half > 0; half /= 2) {
    if (threadIdx.y >= half && threadIdx.y < 2 * half) {
      for (int v = 0; v < V; v++) cells[(tid - half * blockDim.x) * V + v] = acc[v];
    }
    __syncthreads();
    if (threadIdx.y < half) {
      for (int v = 0; v < V; v++) acc[v] = merge(acc[v], cells[tid * V + v]);
    }
    __syncthreads();
  }
}

struct ColumnGrid {
  dim3 grid;
  dim3 block;
};

// Blocks of kColumnThreads for `packs` columns of `rows` rows in each of `segments`: up to `lanes`
// threads across the packs (a power of two, so narrow rows put several rows in one warp), the rest
// down the rows. Row chunks are added until about `targetBlocks` blocks exist, keeping at least
// `minRows` rows per thread so each thread has work worth its share of the final merge.
inline ColumnGrid columnGrid(int segments, size_t rows, int packs, unsigned lanes, unsigned targetBlocks, size_t minRows) {
  unsigned bx = 1;
  while (bx < lanes && bx < static_cast<unsigned>(packs)) bx *= 2;
  const unsigned by = kColumnThreads / bx;
  const unsigned gx = (static_cast<unsigned>(packs) + bx - 1) / bx;
  const size_t perColumn = std::max<size_t>(1, targetBlocks / (size_t(gx) * segments));
  const size_t useful = std::max<size_t>(1, (rows + size_t(by) * minRows - 1) / (size_t(by) * minRows));
  const size_t gy = std::min<size_t>({perColumn, useful, 65535});
  return {dim3(gx, static_cast<unsigned>(gy), static_cast<unsigned>(segments)), dim3(bx, by)};
}

// Whether every pointer allows V-wide accesses at multiples of V elements (floats or halves).
template <class... P>
bool alignedFor(int v, const P *...ptrs) {
  return (((reinterpret_cast<uintptr_t>(ptrs) & (uintptr_t(sizeof(P)) * v - 1)) == 0) && ...);
}

}  // namespace simtrip::cuda
