// Reductions over a set of axes, softmax and top-k.
//
// The TypeScript side views the input as [outer, mid, inner] with mid the reduced axes (transposing
// first when they are not one contiguous run). Two kernels cover every such view:
//  - rows (inner == 1): a warp per row when rows are short, a block per piece of a row otherwise;
//  - columns (inner > 1): threads along inner so reads coalesce, rows of mid strided across the block.
// Both split mid into pieces across blocks when the output alone would not fill the GPU (a full
// reduction to a scalar, BatchNorm's gradient over [N*H*W, C]), and a second pass folds the pieces'
// partial results. Float sums fold per thread then as a tree, in float32.
#include <algorithm>

#include "../launch.h"
#include "../napi.h"
#include "grid.cuh"
#include "reduce_ops.cuh"

namespace simtrip::cuda {

namespace {

// Where a pass reads from: the input, whose elements R::load maps to accumulators, or a first pass's
// partial results, which already are accumulators.
template <class R, bool kFromInput>
struct Source;
template <class R>
struct Source<R, true> {
  using T = typename R::In;
  __device__ static typename R::Acc at(T v, int m) { return R::load(v, m); }
};
template <class R>
struct Source<R, false> {
  using T = typename R::Acc;
  __device__ static typename R::Acc at(T v, int) { return v; }
};

// What a pass writes: the results (the final pass) or partial results for the next pass.
template <class R, bool kFinal>
struct Sink;
template <class R>
struct Sink<R, true> {
  using T = typename R::Out;
  __device__ static T of(typename R::Acc a, size_t count) { return R::finish(a, count); }
};
template <class R>
struct Sink<R, false> {
  using T = typename R::Acc;
  __device__ static T of(typename R::Acc a, size_t) { return a; }
};

// Four 4-byte elements loaded as one 16-byte transaction.
template <class T>
struct alignas(16) Quad {
  T v[4];
};

constexpr int kBlockThreads = 256;
// Rows shorter than this get a warp each; longer ones a block per piece.
constexpr size_t kWarpRowMax = 2048;
// The least a block's piece of a row holds, so splitting never makes blocks that only start and stop.
constexpr size_t kMinPiece = 16 * kBlockThreads;
// The least rows of mid each thread of a column block folds before the block's result is worth a pass.
constexpr size_t kMinRowsPerThread = 8;

// out[u] for units u = row * splits + piece: the reduction of elements [piece * chunk, +chunk) of row
// `row` (mid elements long). A group of blockDim.x threads shares a unit: the whole block
// (kWholeBlock, blockDim = 256 x 1), or a power of two up to a warp (blockDim.y groups per block, as
// many lanes as short rows can use). kQuads: mid and chunk are multiples of 4 and x is 16-byte aligned.
template <class R, bool kFromInput, bool kFinal, bool kWholeBlock, bool kQuads>
__global__ void __launch_bounds__(kBlockThreads) reduceRowsKernel(const typename Source<R, kFromInput>::T *__restrict__ x,
                                                                  typename Sink<R, kFinal>::T *__restrict__ out, size_t rows, size_t mid,
                                                                  size_t splits, size_t chunk, size_t count) {
  using Src = Source<R, kFromInput>;
  using T = typename Src::T;
  const R op{};
  const unsigned lane = threadIdx.x, width = blockDim.x;
  // The warp's first group: the loop runs while it has a unit, so a warp's lanes stay together for
  // the shuffles even when its last groups have none.
  const unsigned groupInWarp = kWholeBlock ? 0 : threadIdx.y % (32 / width);
  const size_t units = rows * splits;
  for (size_t u = size_t(blockIdx.x) * blockDim.y + threadIdx.y; u - groupInWarp < units; u += size_t(gridDim.x) * blockDim.y) {
    typename R::Acc acc = R::identity();
    if (u < units) {
      const size_t begin = (u % splits) * chunk;
      const size_t end = begin + chunk < mid ? begin + chunk : mid;
      const T *row = x + (u / splits) * mid;
      if constexpr (kQuads) {
        const Quad<T> *quads = reinterpret_cast<const Quad<T> *>(row);
        for (size_t q = begin / 4 + lane; q < end / 4; q += width) {
          const Quad<T> v = quads[q];
          for (int j = 0; j < 4; j++) acc = op(acc, Src::at(v.v[j], static_cast<int>(4 * q + j)));
        }
      } else {
        for (size_t m = begin + lane; m < end; m += width) acc = op(acc, Src::at(row[m], static_cast<int>(m)));
      }
    }
    if constexpr (kWholeBlock) {
      acc = blockAllReduce(acc, op);
    } else {
      acc = warpAllReduce(acc, op, width);
    }
    if (lane == 0 && u < units) out[u] = Sink<R, kFinal>::of(acc, count);
  }
}

// out[(o * splits + piece) * inner + i] = the reduction over m in [piece * chunk, +chunk) of
// x[o, m, i]. A block is TX x TY threads (blockDim.x * blockDim.y == kBlockThreads, both powers of two):
// TX adjacent columns, TY rows of mid apart; units = (o, piece, tile of TX columns).
template <class R, bool kFromInput, bool kFinal>
__global__ void __launch_bounds__(kBlockThreads) reduceColumnsKernel(const typename Source<R, kFromInput>::T *__restrict__ x,
                                                                     typename Sink<R, kFinal>::T *__restrict__ out, size_t outer,
                                                                     size_t mid, size_t inner, size_t splits, size_t chunk,
                                                                     size_t count) {
  using Src = Source<R, kFromInput>;
  __shared__ typename R::Acc partial[kBlockThreads];
  const R op{};
  const size_t tiles = (inner + blockDim.x - 1) / blockDim.x;
  const size_t units = outer * splits * tiles;
  const int slot = threadIdx.y * blockDim.x + threadIdx.x;
  for (size_t u = blockIdx.x; u < units; u += gridDim.x) {
    const size_t i = (u % tiles) * blockDim.x + threadIdx.x;
    const size_t piece = (u / tiles) % splits;
    const size_t o = u / tiles / splits;
    const size_t end = (piece + 1) * chunk < mid ? (piece + 1) * chunk : mid;
    typename R::Acc acc = R::identity();
    if (i < inner) {
      const typename Src::T *column = x + o * mid * inner + i;
      for (size_t m = piece * chunk + threadIdx.y; m < end; m += blockDim.y) acc = op(acc, Src::at(column[m * inner], static_cast<int>(m)));
    }
    partial[slot] = acc;
    __syncthreads();
    for (unsigned half = blockDim.y / 2; half > 0; half /= 2) {
      if (threadIdx.y < half) partial[slot] = op(partial[slot], partial[slot + half * blockDim.x]);
      __syncthreads();
    }
    if (threadIdx.y == 0 && i < inner) out[(o * splits + piece) * inner + i] = Sink<R, kFinal>::of(partial[threadIdx.x], count);
    // partial[] is refilled by the next unit.
    __syncthreads();
  }
}

size_t ceilDiv(size_t a, size_t b) { return (a + b - 1) / b; }

// Blocks enough to keep every SM busy: a reduction that would launch fewer splits mid to get there.
size_t targetBlocks() { return 4 * static_cast<size_t>(std::max(device().smCount, 1)); }

// Pieces of mid (and their length) so that `units` units become about targetBlocks() blocks, no piece
// shorter than minPiece. chunk is a multiple of `align`.
void splitMid(size_t units, size_t mid, size_t minPiece, size_t align, size_t *splits, size_t *chunk) {
  const size_t wanted = ceilDiv(targetBlocks(), std::max<size_t>(units, 1));
  const size_t most = std::max<size_t>(1, mid / minPiece);
  const size_t s = std::min(wanted, most);
  *chunk = ceilDiv(ceilDiv(mid, s), align) * align;
  *splits = ceilDiv(mid, *chunk);
}

// Rows shorter than kWarpRowMax, whole: as many lanes per row as it can use, up to a warp.
template <class R, bool kFromInput>
void reduceShortRows(const void *x, void *out, size_t rows, size_t mid, size_t count) {
  unsigned width = 1;
  while (width < 32 && width < mid) width *= 2;
  const unsigned groups = kBlockThreads / width;
  launchCooperativeOver("reduceRows", reduceRowsKernel<R, kFromInput, true, false, false>, rows, groups, dim3(width, groups),
                     static_cast<const typename Source<R, kFromInput>::T *>(x), static_cast<typename R::Out *>(out), rows, mid, size_t(1),
                     mid, count);
}

// Long rows of the input, a block per piece: the results (one piece per row) or partial results.
template <class R, bool kFinal>
void reduceLongRows(const void *x, void *out, size_t rows, size_t mid, size_t splits, size_t chunk) {
  using In = typename R::In;
  using Out = typename Sink<R, kFinal>::T;
  const In *src = static_cast<const In *>(x);
  Out *dst = static_cast<Out *>(out);
  const size_t units = rows * splits;
  if (mid % 4 == 0 && chunk % 4 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0) {
    launchCooperativeOver("reduceRows", reduceRowsKernel<R, true, kFinal, true, true>, units, 1, dim3(kBlockThreads), src, dst, rows, mid,
                          splits, chunk, mid);
  } else {
    launchCooperativeOver("reduceRows", reduceRowsKernel<R, true, kFinal, true, false>, units, 1, dim3(kBlockThreads), src, dst, rows, mid,
                          splits, chunk, mid);
  }
}

// out[o] = R over x[o, 0..mid).
template <class R>
void reduceRows(const void *x, void *out, size_t rows, size_t mid) {
  if (mid < kWarpRowMax) return reduceShortRows<R, true>(x, out, rows, mid, mid);
  size_t splits, chunk;
  splitMid(rows, mid, kMinPiece, 4, &splits, &chunk);
  if (splits == 1) return reduceLongRows<R, true>(x, out, rows, mid, 1, mid);
  Scratch partial(rows * splits * sizeof(typename R::Acc));
  reduceLongRows<R, false>(x, partial.as<void>(), rows, mid, splits, chunk);
  reduceShortRows<R, false>(partial.as<void>(), out, rows, splits, mid);
}

// Block shape for columns: TX as wide as inner allows up to a warp, wider still when mid is too short
// to give the TY rows work.
dim3 columnBlock(size_t mid, size_t inner) {
  unsigned tx = 1;
  while (tx < 32 && tx < inner) tx *= 2;
  unsigned ty = kBlockThreads / tx;
  while (ty > 1 && tx < inner && ty * kMinRowsPerThread > mid) {
    tx *= 2;
    ty /= 2;
  }
  return dim3(tx, ty);
}

template <class R, bool kFromInput, bool kFinal>
void reduceColumnsWith(const void *x, void *out, size_t outer, size_t mid, size_t inner, size_t splits, size_t chunk, size_t count,
                       dim3 block) {
  const size_t units = outer * splits * ceilDiv(inner, block.x);
  launchCooperativeOver("reduceColumns", reduceColumnsKernel<R, kFromInput, kFinal>, units, 1, block,
                     static_cast<const typename Source<R, kFromInput>::T *>(x), static_cast<typename Sink<R, kFinal>::T *>(out), outer, mid,
                     inner, splits, chunk, count);
}

// out[o, i] = R over x[o, 0..mid, i].
template <class R>
void reduceColumns(const void *x, void *out, size_t outer, size_t mid, size_t inner) {
  const dim3 block = columnBlock(mid, inner);
  size_t splits, chunk;
  splitMid(outer * ceilDiv(inner, block.x), mid, block.y * kMinRowsPerThread, 1, &splits, &chunk);
  if (splits == 1) return reduceColumnsWith<R, true, true>(x, out, outer, mid, inner, 1, mid, mid, block);
  Scratch partial(outer * splits * inner * sizeof(typename R::Acc));
  reduceColumnsWith<R, true, false>(x, partial.as<void>(), outer, mid, inner, splits, chunk, mid, block);
  reduceColumnsWith<R, false, true>(partial.as<void>(), out, outer, splits, inner, 1, splits, mid, columnBlock(splits, inner));
}

template <class R>
void reduceView(const void *x, void *out, size_t outer, size_t mid, size_t inner) {
  if (outer == 0 || inner == 0) return;
  if (mid == 0) throw std::invalid_argument("reduce: nothing to reduce (the caller fills empty reductions)");
  if (mid > static_cast<size_t>(INT_MAX)) throw std::invalid_argument("reduce: more than 2^31 - 1 elements per reduction");
  if (inner == 1) return reduceRows<R>(x, out, outer, mid);
  reduceColumns<R>(x, out, outer, mid, inner);
}

// Operation codes shared with src/engine/cuda/kernels/reduce.ts.
enum class ReduceOp { Sum = 0, Mean = 1, Prod = 2, Max = 3, Min = 4, ArgMax = 5, ArgMin = 6 };

template <class T>
void reduceOf(ReduceOp op, const void *x, void *out, size_t outer, size_t mid, size_t inner) {
  switch (op) {
    case ReduceOp::Sum:
      return reduceView<SumOf<T>>(x, out, outer, mid, inner);
    case ReduceOp::Mean:
      return reduceView<MeanOf<T>>(x, out, outer, mid, inner);
    case ReduceOp::Prod:
      return reduceView<ProdOf<T>>(x, out, outer, mid, inner);
    case ReduceOp::Max:
      return reduceView<MaxOf<T>>(x, out, outer, mid, inner);
    case ReduceOp::Min:
      return reduceView<MinOf<T>>(x, out, outer, mid, inner);
    case ReduceOp::ArgMax:
      return reduceView<ArgMaxOf<T>>(x, out, outer, mid, inner);
    case ReduceOp::ArgMin:
      return reduceView<ArgMinOf<T>>(x, out, outer, mid, inner);
  }
  throw std::invalid_argument("reduce: unknown operation " + std::to_string(static_cast<int>(op)));
}

// ---- softmax ----

// y[r, :] = exp(x[r, :] - max) / sum(exp(x[r, :] - max)) over rows of n, kGroup threads per row as in
// reduceRowsKernel. exp is recomputed in the last pass rather than stored: the row is in cache.
template <int kGroup>
__global__ void __launch_bounds__(kBlockThreads) softmaxKernel(const float *__restrict__ x, float *__restrict__ y, size_t rows, int n) {
  const int lane = threadIdx.x;
  for (size_t r = size_t(blockIdx.x) * blockDim.y + threadIdx.y; r < rows; r += size_t(gridDim.x) * blockDim.y) {
    const float *in = x + r * n;
    float *out = y + r * n;
    float top = lowestOf<float>();
    for (int j = lane; j < n; j += kGroup) top = MaxOf<float>()(top, in[j]);
    float sum = 0.f;
    if constexpr (kGroup == 32) {
      top = warpAllReduce(top, MaxOf<float>());
      for (int j = lane; j < n; j += kGroup) sum += expf(in[j] - top);
      sum = warpAllReduce(sum, SumOf<float>());
    } else {
      top = blockAllReduce(top, MaxOf<float>());
      for (int j = lane; j < n; j += kGroup) sum += expf(in[j] - top);
      sum = blockAllReduce(sum, SumOf<float>());
    }
    for (int j = lane; j < n; j += kGroup) out[j] = expf(in[j] - top) / sum;
  }
}

void softmax(const float *x, float *y, size_t rows, int n) {
  if (rows == 0 || n <= 0) return;
  if (static_cast<size_t>(n) < kWarpRowMax) {
    constexpr int kWarps = kBlockThreads / 32;
    launchCooperativeOver("softmax", softmaxKernel<32>, rows, kWarps, dim3(32, kWarps), x, y, rows, n);
  } else {
    launchCooperativeOver("softmax", softmaxKernel<kBlockThreads>, rows, 1, dim3(kBlockThreads), x, y, rows, n);
  }
}

// ---- top-k ----

constexpr int kTopKMax = 1024;

// Unsigned keys that order as the values do, -0 and 0 alike (the cpu kernel compares by difference).
__device__ __forceinline__ uint32_t orderedKey(float v) {
  const uint32_t u = __float_as_uint(v == 0.f ? 0.f : v);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
__device__ __forceinline__ uint32_t orderedKey(int v) { return static_cast<uint32_t>(v) ^ 0x80000000u; }

// One key and position, ordered as the output is: larger key first, then lower position.
__device__ __forceinline__ unsigned long long rankOf(uint32_t key, int index) {
  return (static_cast<unsigned long long>(key) << 32) | (0xffffffffu - static_cast<uint32_t>(index));
}

// The k largest of each row of n, in the cpu kernel's order (value descending, ties by position), a
// block per row: a radix select finds the k-th largest key a byte at a time (a histogram of the
// candidates still matching the bytes found so far), one pass collects the keys above it and the
// first ties, and a bitonic sort in shared memory orders those k.
template <class T>
__global__ void __launch_bounds__(kBlockThreads) topKKernel(const T *__restrict__ x, T *__restrict__ values, int *__restrict__ indices,
                                                            size_t rows, int n, int k) {
  __shared__ unsigned int histogram[256];
  __shared__ unsigned long long selected[kTopKMax];
  __shared__ uint32_t found[2];
  __shared__ int taken[2];
  const int tid = threadIdx.x;
  int sortSize = 1;
  while (sortSize < k) sortSize *= 2;
  for (size_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T *row = x + r * n;
    uint32_t prefix = 0, prefixMask = 0;
    int remaining = k;  // how many of the top k are among the candidates
    for (int shift = 24; shift >= 0; shift -= 8) {
      for (int b = tid; b < 256; b += blockDim.x) histogram[b] = 0;
      __syncthreads();
      for (int j = tid; j < n; j += blockDim.x) {
        const uint32_t key = orderedKey(row[j]);
        if ((key & prefixMask) == prefix) atomicAdd(&histogram[(key >> shift) & 255u], 1u);
      }
      __syncthreads();
      // The byte of the remaining-th largest candidate: lane l sums bins 255 - 8l down to 248 - 8l, a
      // prefix sum over lanes counts the candidates above each lane's bins, and the lane where the
      // count crosses `remaining` walks its own bins.
      if (tid < 32) {
        const int top = 255 - 8 * tid;
        unsigned int mine = 0;
        for (int b = top; b > top - 8; b--) mine += histogram[b];
        unsigned int upTo = mine;
        for (int offset = 1; offset < 32; offset *= 2) {
          const unsigned int other = __shfl_sync(0xffffffffu, upTo, tid >= offset ? tid - offset : tid);
          if (tid >= offset) upTo += other;
        }
        unsigned int above = upTo - mine;
        if (above < static_cast<unsigned>(remaining) && static_cast<unsigned>(remaining) <= upTo) {
          for (int b = top; b > top - 8; b--) {
            if (above + histogram[b] >= static_cast<unsigned>(remaining)) {
              found[0] = static_cast<uint32_t>(b);
              found[1] = static_cast<uint32_t>(remaining) - above;
              break;
            }
            above += histogram[b];
          }
        }
      }
      __syncthreads();
      prefix |= found[0] << shift;
      prefixMask |= 255u << shift;
      remaining = static_cast<int>(found[1]);
      __syncthreads();
    }
    // prefix is now the k-th largest key: every key above it is in, and the first `remaining` equal to it.
    if (tid == 0) taken[0] = taken[1] = 0;
    __syncthreads();
    for (int base = 0; base < n; base += blockDim.x) {
      const int j = base + tid;
      const uint32_t key = j < n ? orderedKey(row[j]) : 0u;
      const bool tie = j < n && key == prefix;
      int ties = 0;
      const int tieRank = taken[1] + blockExclusiveScan(tie ? 1 : 0, &ties);
      if (j < n && key > prefix) selected[atomicAdd(&taken[0], 1)] = rankOf(key, j);
      if (tie && tieRank < remaining) selected[k - remaining + tieRank] = rankOf(key, j);
      __syncthreads();
      if (tid == 0) taken[1] += ties;
      __syncthreads();
    }
    for (int i = k + tid; i < sortSize; i += blockDim.x) selected[i] = 0;  // below every real entry
    __syncthreads();
    for (int size = 2; size <= sortSize; size *= 2) {
      for (int stride = size / 2; stride > 0; stride /= 2) {
        for (int i = tid; i < sortSize; i += blockDim.x) {
          const int j = i ^ stride;
          if (j > i) {
            const unsigned long long a = selected[i], b = selected[j];
            const bool descending = (i & size) == 0;
            if ((a < b) == descending) {
              selected[i] = b;
              selected[j] = a;
            }
          }
        }
        __syncthreads();
      }
    }
    for (int i = tid; i < k; i += blockDim.x) {
      const int index = static_cast<int>(0xffffffffu - static_cast<uint32_t>(selected[i]));
      indices[r * k + i] = index;
      values[r * k + i] = row[index];
    }
    __syncthreads();
  }
}

template <class T>
void topK(const T *x, T *values, int *indices, size_t rows, int n, int k) {
  if (rows == 0 || k == 0) return;
  if (k > kTopKMax || k > n) throw std::invalid_argument("topK: k must be at most min(n, " + std::to_string(kTopKMax) + ")");
  launchCooperativeOver("topK", topKKernel<T>, rows, 1, dim3(kBlockThreads), x, values, indices, rows, n, k);
}

}  // namespace

// (op, dtype: 0 float32 / 1 int32, x, out, outer, mid, inner): out[o, i] = op over m of x[o, m, i].
SIMTRIP_EXPORT(reduce) {
  args.need(7, "reduce");
  const auto op = static_cast<ReduceOp>(args.integer(0, "op"));
  const int dtype = args.integer(1, "dtype");
  const void *x = args.ptr(2, "x");
  void *out = args.ptr(3, "out");
  const size_t outer = args.size(4, "outer"), mid = args.size(5, "mid"), inner = args.size(6, "inner");
  if (dtype == 0) {
    reduceOf<float>(op, x, out, outer, mid, inner);
  } else if (dtype == 1) {
    reduceOf<int>(op, x, out, outer, mid, inner);
  } else {
    throw ArgError("reduce: dtype must be 0 (float32) or 1 (int32)");
  }
  return undefined(args.env);
}

// (x, y, rows, n): softmax over each row of n float32 values.
SIMTRIP_EXPORT(softmax) {
  args.need(4, "softmax");
  softmax(args.ptr<const float>(0, "x"), args.ptr<float>(1, "y"), args.size(2, "rows"), args.integer(3, "n"));
  return undefined(args.env);
}

// (dtype: 0 float32 / 1 int32, x, values, indices, rows, n, k): the k largest of each row, sorted.
SIMTRIP_EXPORT(topK) {
  args.need(7, "topK");
  const int dtype = args.integer(0, "dtype");
  const size_t rows = args.size(4, "rows");
  const int n = args.integer(5, "n"), k = args.integer(6, "k");
  int *indices = args.ptr<int>(3, "indices");
  if (dtype == 0) {
    topK(args.ptr<const float>(1, "x"), args.ptr<float>(2, "values"), indices, rows, n, k);
  } else if (dtype == 1) {
    topK(args.ptr<const int>(1, "x"), args.ptr<int>(2, "values"), indices, rows, n, k);
  } else {
    throw ArgError("topK: dtype must be 0 (float32) or 1 (int32)");
  }
  return undefined(args.env);
}

}  // namespace simtrip::cuda
