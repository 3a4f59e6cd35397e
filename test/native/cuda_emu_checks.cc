// Checks of the CUDA emulator (native/cuda/host/emu.h) that the host build of every kernel relies on:
// barriers really wait, shuffles read the right lane, and misuse is reported instead of hanging.
// Built and run by test/native/cuda_emu.test.ts; prints one line per check, exits 1 on a failure.
#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include "cuda/launch.h"
#include "cuda/kernels/block_reduce.cuh"

using namespace simtrip::cuda;

static int failures = 0;

static void check(bool ok, const std::string &what) {
  std::printf("%s %s\n", ok ? "ok  " : "FAIL", what.c_str());
  if (!ok) failures++;
}

template <class F>
static std::string errorOf(F f) {
  try {
    f();
  } catch (const std::exception &e) {
    return e.what();
  }
  return "";
}

__global__ void blockSum(const float *x, float *out, int n) {
  float v = 0.f;
  for (int i = threadIdx.x; i < n; i += blockDim.x) v += x[blockIdx.x * n + i];
  v = blockReduce(v, SumOp{}, 0.f);
  if (threadIdx.x == 0) out[blockIdx.x] = v;
}

// Every thread reads what its left neighbour wrote before the barrier: wrong without a real barrier.
__global__ void neighbourAfterBarrier(int *out) {
  __shared__ int slots[128];
  slots[threadIdx.x] = threadIdx.x * 3;
  __syncthreads();
  out[threadIdx.x] = slots[(threadIdx.x + 127) % 128];
}

__global__ void shuffles(int *down, int *xorOut, int *bcast) {
  const int lane = threadIdx.x % 32;
  down[threadIdx.x] = __shfl_down_sync(0xffffffffu, lane * 10, 3);
  xorOut[threadIdx.x] = __shfl_xor_sync(0xffffffffu, lane, 1);
  bcast[threadIdx.x] = __shfl_sync(0xffffffffu, lane + 100, 5, 16);
}

__global__ void welford(const float *x, float *mean, float *m2, int n) {
  Welford w{0.f, 0.f, 0.f};
  for (int i = threadIdx.x; i < n; i += 32) w = welfordAdd(w, x[i]);
  w = warpReduceWelford(w);
  if (threadIdx.x == 0) {
    *mean = w.mean;
    *m2 = w.m2;
  }
}

__global__ void earlyExitBeforeBarrier(int *out) {
  if (threadIdx.x >= 16) return;
  __syncthreads();
  out[threadIdx.x] = 1;
}

__global__ void barrierInPlainLaunch(int *out) {
  __syncthreads();
  out[threadIdx.x] = 1;
}

__global__ void shuffleOutsideMask(int *out) {
  if (threadIdx.x < 16) out[threadIdx.x] = __shfl_sync(0x0000ffffu, 1, 20);
}

int main() {
  {
    const int blocks = 3, n = 1000;
    std::vector<float> x(blocks * n), out(blocks);
    for (size_t i = 0; i < x.size(); i++) x[i] = std::sin(float(i)) + 0.25f;
    launch_cooperative("blockSum", blockSum, dim3(blocks), dim3(256), x.data(), out.data(), n);
    bool ok = true;
    for (int b = 0; b < blocks; b++) {
      double ref = 0;
      for (int i = 0; i < n; i++) ref += x[b * n + i];
      ok = ok && std::fabs(out[b] - ref) < 1e-3;
    }
    check(ok, "blockReduce sums each block of 256 threads");
  }
  {
    std::vector<int> out(128);
    launch_cooperative("neighbourAfterBarrier", neighbourAfterBarrier, dim3(1), dim3(128), out.data());
    bool ok = true;
    for (int t = 0; t < 128; t++) ok = ok && out[t] == ((t + 127) % 128) * 3;
    check(ok, "__syncthreads makes every write before it visible to every thread after it");
  }
  {
    std::vector<int> down(64), x(64), b(64);
    launch_cooperative("shuffles", shuffles, dim3(1), dim3(64), down.data(), x.data(), b.data());
    bool ok = true;
    for (int t = 0; t < 64; t++) {
      const int lane = t % 32;
      ok = ok && down[t] == (lane + 3 < 32 ? (lane + 3) * 10 : lane * 10);
      ok = ok && x[t] == (lane ^ 1);
      ok = ok && b[t] == (lane / 16) * 16 + 5 + 100;
    }
    check(ok, "__shfl_down_sync, __shfl_xor_sync and __shfl_sync with a width read the lanes CUDA defines");
  }
  {
    const int n = 777;
    std::vector<float> x(n);
    for (int i = 0; i < n; i++) x[i] = 1000.f + std::cos(0.1f * i);
    float mean = 0, m2 = 0;
    launch_cooperative("welford", welford, dim3(1), dim3(32), x.data(), &mean, &m2, n);
    double rm = 0, rv = 0;
    for (float v : x) rm += v;
    rm /= n;
    for (float v : x) rv += (v - rm) * (v - rm);
    check(std::fabs(mean - rm) < 1e-3 && std::fabs(m2 - rv) / rv < 1e-3, "the warp's Welford merge gives the two-pass mean and M2 at a large offset");
  }
  {
    std::vector<int> out(32);
    const std::string e = errorOf([&] { launch_cooperative("earlyExit", earlyExitBeforeBarrier, dim3(1), dim3(32), out.data()); });
    check(e.find("__syncthreads") != std::string::npos && e.find("earlyExit") != std::string::npos, "a barrier that exited threads never reach is an error naming the kernel: " + e);
  }
  {
    std::vector<int> out(32);
    const std::string e = errorOf([&] { launch("barrierInPlainLaunch", barrierInPlainLaunch, dim3(1), dim3(32), out.data()); });
    check(e.find("launch_cooperative") != std::string::npos, "a barrier in a plain launch is an error: " + e);
  }
  {
    std::vector<int> out(32);
    const std::string e = errorOf([&] { launch_cooperative("shuffleOutsideMask", shuffleOutsideMask, dim3(1), dim3(32), out.data()); });
    check(e.find("not in its mask") != std::string::npos, "a shuffle from a lane outside its mask is an error: " + e);
  }
  return failures ? 1 : 0;
}
