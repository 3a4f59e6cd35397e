// Cooperative reductions within a warp and a block, for kernels launched with launch_cooperative.
// Every thread of the block must call blockReduce* (they contain barriers).
#pragma once

#include "../compat.h"

namespace simtrip::cuda {

template <class T, class Op>
__device__ __forceinline__ T warpReduce(T v, Op op) {
  for (int offset = warpSize / 2; offset > 0; offset /= 2) v = op(v, __shfl_down_sync(0xffffffffu, v, offset));
  return v;
}

// The block's reduction of v, valid in thread 0 (the others hold partial values). blockDim.x * y * z
// must be a multiple of 32, at most 1024.
template <class T, class Op>
__device__ __forceinline__ T blockReduce(T v, Op op, T identity) {
  __shared__ T partial[32];
  const int tid = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  const int lane = tid % warpSize;
  const int warp = tid / warpSize;
  const int warps = (blockDim.x * blockDim.y * blockDim.z) / warpSize;
  v = warpReduce(v, op);
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  v = tid < warps ? partial[lane] : identity;
  if (warp == 0) v = warpReduce(v, op);
  // partial[] may be reused by the caller's next reduction only after every warp has read it.
  __syncthreads();
  return v;
}

struct SumOp {
  template <class T>
  __device__ __forceinline__ T operator()(T a, T b) const {
    return a + b;
  }
};

// Running mean and M2 (sum of squared deviations) of a set of values: Welford's update for one value,
// Chan's formula to merge two sets. One pass, and no cancellation when the mean is large against the
// spread, which E[x^2] - E[x]^2 suffers from in float32.
struct Welford {
  float count;
  float mean;
  float m2;
};

__device__ __forceinline__ Welford welfordAdd(Welford a, float x) {
  a.count += 1.f;
  const float delta = x - a.mean;
  a.mean += delta / a.count;
  a.m2 += delta * (x - a.mean);
  return a;
}

__device__ __forceinline__ Welford welfordMerge(Welford a, Welford b) {
  const float n = a.count + b.count;
  if (n == 0.f) return a;
  const float delta = b.mean - a.mean;
  const float wb = b.count / n;
  Welford out;
  out.count = n;
  out.mean = a.mean + delta * wb;
  out.m2 = a.m2 + b.m2 + delta * delta * a.count * wb;
  return out;
}

// A warp's Welford merge: shuffles move scalars only, so the three fields travel separately.
__device__ __forceinline__ Welford warpReduceWelford(Welford w) {
  for (int offset = warpSize / 2; offset > 0; offset /= 2) {
    Welford other;
    other.count = __shfl_down_sync(0xffffffffu, w.count, offset);
    other.mean = __shfl_down_sync(0xffffffffu, w.mean, offset);
    other.m2 = __shfl_down_sync(0xffffffffu, w.m2, offset);
    w = welfordMerge(w, other);
  }
  return w;
}

}  // namespace simtrip::cuda
