// Reductions as values: the operators the reduce kernels fold with (tfjs' Sum, Mean, Prod, Max, Min,
// ArgMax, ArgMin with the cpu backend's NaN and tie rules), and group reductions that leave the result
// in every thread (for kernels that go on using it, like softmax) for accumulators of any type.
#pragma once

#include <climits>
#include <cstdint>

#include "../compat.h"

namespace simtrip::cuda {

// An element of the reduced axis with its position there: what ArgMax and ArgMin fold.
template <class T>
struct Indexed {
  T value;
  int index;
};

template <class T>
__device__ __forceinline__ T shuffleXor(T v, int laneMask) {
  return __shfl_xor_sync(0xffffffffu, v, laneMask);
}

// Shuffles move scalars only, so the fields travel separately.
template <class T>
__device__ __forceinline__ Indexed<T> shuffleXor(Indexed<T> v, int laneMask) {
  return {__shfl_xor_sync(0xffffffffu, v.value, laneMask), __shfl_xor_sync(0xffffffffu, v.index, laneMask)};
}

// The reduction over the `width` lanes of this thread's aligned segment of the warp (a power of two up
// to 32), in every one of them. The butterfly applies op to the same two values in every lane of a pair
// (a + b and b + a are the same float), so all lanes end with the same bits.
template <class T, class Op>
__device__ __forceinline__ T warpAllReduce(T v, Op op, int width = 32) {
  for (int m = width / 2; m > 0; m /= 2) v = op(v, shuffleXor(v, m));
  return v;
}

// The reduction over the whole block, in every thread. Every thread must call it (barriers inside);
// the block's size must be a multiple of 32.
template <class T, class Op>
__device__ __forceinline__ T blockAllReduce(T v, Op op) {
  __shared__ T perWarp[32];
  const int tid = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  const int warps = (blockDim.x * blockDim.y * blockDim.z) / warpSize;
  v = warpAllReduce(v, op);
  if (tid % warpSize == 0) perWarp[tid / warpSize] = v;
  __syncthreads();
  v = perWarp[0];
  for (int w = 1; w < warps; w++) v = op(v, perWarp[w]);
  // perWarp may be refilled by the caller's next reduction only after every thread has read it.
  __syncthreads();
  return v;
}

// Exclusive prefix sum of v over the block (threads numbered x fastest), and the block's total.
// Every thread must call it; the block's size must be a multiple of 32.
__device__ __forceinline__ int blockExclusiveScan(int v, int *total) {
  __shared__ int perWarp[32];
  const int tid = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  const int lane = tid % warpSize;
  const int warps = (blockDim.x * blockDim.y * blockDim.z) / warpSize;
  int inclusive = v;
  for (int offset = 1; offset < warpSize; offset *= 2) {
    const int other = __shfl_sync(0xffffffffu, inclusive, lane >= offset ? lane - offset : lane);
    if (lane >= offset) inclusive += other;
  }
  if (lane == warpSize - 1) perWarp[tid / warpSize] = inclusive;
  __syncthreads();
  int before = 0, sum = 0;
  for (int w = 0; w < warps; w++) {
    if (w == tid / warpSize) before = sum;
    sum += perWarp[w];
  }
  *total = sum;
  __syncthreads();
  return before + inclusive - v;
}

template <class T>
__device__ __forceinline__ T lowestOf();
template <>
__device__ __forceinline__ float lowestOf<float>() {
  return -INFINITY;
}
template <>
__device__ __forceinline__ int lowestOf<int>() {
  return INT_MIN;
}
template <class T>
__device__ __forceinline__ T highestOf();
template <>
__device__ __forceinline__ float highestOf<float>() {
  return INFINITY;
}
template <>
__device__ __forceinline__ int highestOf<int>() {
  return INT_MAX;
}

__device__ __forceinline__ bool isNaN(float v) { return isnan(v); }
__device__ __forceinline__ bool isNaN(int) { return false; }

// int32 sums and products wrap as tfjs' Int32Array stores do (the cpu backend computes in doubles and
// stores modulo 2^32), without signed overflow.
__device__ __forceinline__ float add(float a, float b) { return a + b; }
__device__ __forceinline__ int add(int a, int b) { return static_cast<int>(static_cast<uint32_t>(a) + static_cast<uint32_t>(b)); }
__device__ __forceinline__ float multiply(float a, float b) { return a * b; }
__device__ __forceinline__ int multiply(int a, int b) { return static_cast<int>(static_cast<uint32_t>(a) * static_cast<uint32_t>(b)); }

// A reduction: In (the input's element type) -> Acc (what partial results carry) -> Out. load() turns
// element m of the reduced axis into an accumulator, operator() folds two, finish() makes the result
// of a reduction over `count` elements.
//
// SameType holds what the reductions that keep the input's type throughout have in common; each of them
// adds only its identity and its fold.
template <class T>
struct SameType {
  using In = T;
  using Acc = T;
  using Out = T;
  __device__ static Acc load(In v, int) { return v; }
  __device__ static Out finish(Acc a, size_t) { return a; }
};

template <class T>
struct SumOf : SameType<T> {
  __device__ static T identity() { return T(0); }
  __device__ T operator()(T a, T b) const { return add(a, b); }
};

// The mean in float32 whatever the input (tfjs' Mean casts first), divided once at the end.
template <class T>
struct MeanOf {
  using In = T;
  using Acc = float;
  using Out = float;
  __device__ static Acc identity() { return 0.f; }
  __device__ static Acc load(In v, int) { return static_cast<float>(v); }
  __device__ Acc operator()(Acc a, Acc b) const { return a + b; }
  __device__ static Out finish(Acc a, size_t count) { return a / static_cast<float>(count); }
};

template <class T>
struct ProdOf : SameType<T> {
  __device__ static T identity() { return T(1); }
  __device__ T operator()(T a, T b) const { return multiply(a, b); }
};

// NaN wins, as in the cpu kernels' `isNaN(v) || v > max`.
template <class T>
struct MaxOf : SameType<T> {
  __device__ static T identity() { return lowestOf<T>(); }
  __device__ T operator()(T a, T b) const { return a > b || isNaN(a) ? a : b; }
};

template <class T>
struct MinOf : SameType<T> {
  __device__ static T identity() { return highestOf<T>(); }
  __device__ T operator()(T a, T b) const { return a < b || isNaN(a) ? a : b; }
};

// The first position of the largest value. The cpu kernel starts from element 0 and moves on a strictly
// larger value only, so a NaN there is the answer and a NaN anywhere else never is: element 0's NaN
// becomes the top with the lowest position, the others lose to everything.
template <class T>
struct ArgMaxOf {
  using In = T;
  using Acc = Indexed<T>;
  using Out = int;
  __device__ static Acc identity() { return {lowestOf<T>(), INT_MAX}; }
  __device__ static Acc load(In v, int m) {
    if (isNaN(v)) return m == 0 ? Acc{highestOf<T>(), 0} : identity();
    return {v, m};
  }
  __device__ Acc operator()(Acc a, Acc b) const { return a.value > b.value || (a.value == b.value && a.index < b.index) ? a : b; }
  __device__ static Out finish(Acc a, size_t) { return a.index; }
};

template <class T>
struct ArgMinOf {
  using In = T;
  using Acc = Indexed<T>;
  using Out = int;
  __device__ static Acc identity() { return {highestOf<T>(), INT_MAX}; }
  __device__ static Acc load(In v, int m) {
    if (isNaN(v)) return m == 0 ? Acc{lowestOf<T>(), 0} : identity();
    return {v, m};
  }
  __device__ Acc operator()(Acc a, Acc b) const { return a.value < b.value || (a.value == b.value && a.index < b.index) ? a : b; }
  __device__ static Out finish(Acc a, size_t) { return a.index; }
};

}  // namespace simtrip::cuda
