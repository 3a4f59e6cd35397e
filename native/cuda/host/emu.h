// CUDA's execution model on the CPU, for the host build of the CUDA engine (SIMTRIP_HOST_EMU).
//
// The CI machine has nvcc but no GPU, so the kernels in native/cuda/kernels/ are also compiled with g++
// against this header and run by the tests. A kernel that cooperates (shared memory, __syncthreads,
// warp shuffles) runs one block at a time with every CUDA thread as a fiber: a barrier really waits for
// the whole block, a shuffle really reads another lane's value, and a barrier that only part of the
// block reaches is reported as an error instead of hanging a GPU later. A kernel without cooperation
// runs its threads as a plain loop.
//
// Only what simtrip's kernels use is here; anything else fails to compile, which is the point.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>

struct uint3 {
  unsigned int x, y, z;
};

struct dim3 {
  unsigned int x, y, z;
  constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1) : x(vx), y(vy), z(vz) {}
};

// The built-in variables; the scheduler sets them before it resumes a thread.
extern thread_local uint3 threadIdx;
extern thread_local uint3 blockIdx;
extern thread_local dim3 blockDim;
extern thread_local dim3 gridDim;
constexpr int warpSize = 32;

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __restrict__ __restrict
#define __launch_bounds__(...)
// One block runs at a time on one OS thread, so a function-static array is exactly one block's
// shared memory (its contents are undefined at block start, as on the GPU).
#define __shared__ static thread_local

namespace simtrip::emu {

// Runs `body` as the kernel `name` over the grid. `cooperative`: the kernel uses __syncthreads or warp
// shuffles, so its threads run as fibers. Throws std::runtime_error on a barrier misuse.
void run(const char *name, dim3 grid, dim3 block, bool cooperative, const std::function<void()> &body);

void syncthreads();
void syncwarp(unsigned mask);
// Publishes this lane's `bits`, waits for the lanes of `mask`, returns lane `src`'s bits.
uint64_t exchange(unsigned mask, uint64_t bits, int src);
// This thread's lane within its warp (threads are numbered x fastest, as on the GPU).
int lane();

template <class T>
T shuffle(unsigned mask, T v, int src) {
  static_assert(sizeof(T) <= sizeof(uint64_t), "shuffle of a type wider than 64 bits");
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  bits = exchange(mask, bits, src);
  T out;
  std::memcpy(&out, &bits, sizeof(T));
  return out;
}

}  // namespace simtrip::emu

inline void __syncthreads() { simtrip::emu::syncthreads(); }
inline void __syncwarp(unsigned mask = 0xffffffffu) { simtrip::emu::syncwarp(mask); }

// CUDA's lane arithmetic: `width` splits the warp into segments; a source outside the caller's segment
// returns the caller's own value.
template <class T>
T __shfl_sync(unsigned mask, T v, int srcLane, int width = warpSize) {
  const int lane = simtrip::emu::lane();
  return simtrip::emu::shuffle(mask, v, (lane / width) * width + (srcLane % width));
}
template <class T>
T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = warpSize) {
  const int lane = simtrip::emu::lane();
  const int src = (lane % width) + static_cast<int>(delta) < width ? lane + static_cast<int>(delta) : lane;
  return simtrip::emu::shuffle(mask, v, src);
}
template <class T>
T __shfl_xor_sync(unsigned mask, T v, int laneMask, int width = warpSize) {
  const int lane = simtrip::emu::lane();
  const int src = lane ^ laneMask;
  return simtrip::emu::shuffle(mask, v, src / width == lane / width ? src : lane);
}

// Fibers never run at the same time, so read-modify-write is already atomic.
template <class T>
T atomicAdd(T *address, T v) {
  T old = *address;
  *address = old + v;
  return old;
}
template <class T>
T atomicMax(T *address, T v) {
  T old = *address;
  if (v > old) *address = v;
  return old;
}

inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline unsigned int __float_as_uint(float f) {
  unsigned int u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}
inline float __uint_as_float(unsigned int u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
template <class T>
T __ldg(const T *p) {
  return *p;
}
using std::isfinite;
using std::isinf;
using std::isnan;

// IEEE binary16: GCC's _Float16 converts with round-to-nearest-even, as __float2half_rn does.
using __half = _Float16;
inline __half __float2half_rn(float f) { return static_cast<__half>(f); }
inline float __half2float(__half h) { return static_cast<float>(h); }
