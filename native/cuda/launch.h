// Kernel launches that read the same in both builds: launch(name, kernel, grid, block, args...).
// launch_cooperative is for kernels whose threads cooperate (shared memory with __syncthreads, warp
// shuffles): on the GPU it is the same launch, in the host build it runs every thread as a fiber.
//
// Every launch is checked against the device's limits first (grid dimensions, block size), so a shape
// too large for a kernel's grid is an error naming the kernel and the grid, not a launch failure that
// surfaces later. Grid-stride kernels take their grid from gridFor(kernel, ...): one full wave of the
// device, as many blocks as the occupancy calculator says fit on every SM at once.
#pragma once

#include <algorithm>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include "compat.h"
#include "runtime.h"

namespace simtrip::cuda {

// Blocks of `threads` threads (and `sharedBytes` of dynamic shared memory) of `kernel` that fit on one
// SM at the same time: cudaOccupancyMaxActiveBlocksPerMultiprocessor on the GPU (cached per kernel),
// and in the host build the same calculation from the thread and block limits alone (it has no
// registers to count). At least 1.
int blocksPerSm(const void *kernel, unsigned threads, size_t sharedBytes = 0);

namespace detail {

inline std::string describe(dim3 d) {
  return "(" + std::to_string(d.x) + "," + std::to_string(d.y) + "," + std::to_string(d.z) + ")";
}

inline void checkLimits(const char *name, dim3 grid, dim3 block) {
  const DeviceInfo &d = device();
  const size_t threads = size_t(block.x) * block.y * block.z;
  if (grid.x > d.maxGridX || grid.y > d.maxGridY || grid.z > d.maxGridZ || threads == 0 || threads > 1024) {
    throw DeviceError(std::string("launching ") + name + ": grid " + describe(grid) + " of blocks " + describe(block) +
                      " exceeds the device's limits (grid " + describe(dim3(d.maxGridX, d.maxGridY, d.maxGridZ)) + ", 1024 threads a block)");
  }
}

template <typename... P, typename Tuple, size_t... I>
void startOnDevice(const char *name, void (*kernel)(P...), dim3 grid, dim3 block, Tuple &values, std::index_sequence<I...>) {
#ifdef SIMTRIP_HOST_EMU
  (void)name, (void)kernel, (void)grid, (void)block, (void)values;
#else
  void *args[] = {static_cast<void *>(&std::get<I>(values))..., nullptr};
  const cudaError_t e = cudaLaunchKernel(reinterpret_cast<const void *>(kernel), grid, block, args, 0, stream());
  if (e != cudaSuccess) throw DeviceError(std::string("launching ") + name + ": " + cudaGetErrorString(e));
  checkLaunch(name);
#endif
}

template <typename... P, typename... A>
void start(const char *name, bool cooperative, void (*kernel)(P...), dim3 grid, dim3 block, A &&...args) {
  static_assert(sizeof...(P) == sizeof...(A), "kernel launched with the wrong number of arguments");
  if (grid.x == 0 || grid.y == 0 || grid.z == 0) return;
  raiseFault();
  checkLimits(name, grid, block);
  counters().launches++;
  counters().blocks += uint64_t(grid.x) * grid.y * grid.z;
  // Converted to the kernel's parameter types here, as a <<<>>> launch would.
  std::tuple<std::decay_t<P>...> values(std::forward<A>(args)...);
#ifdef SIMTRIP_HOST_EMU
  if (emulation::kernelFaulted(name)) return;
  emu::run(name, grid, block, cooperative, [&] { std::apply(kernel, values); });
  checkLaunch(name);
#else
  (void)cooperative;
  startOnDevice(name, kernel, grid, block, values, std::index_sequence_for<P...>{});
#endif
}

}  // namespace detail

template <typename... P, typename... A>
void launch(const char *name, void (*kernel)(P...), dim3 grid, dim3 block, A &&...args) {
  detail::start(name, false, kernel, grid, block, std::forward<A>(args)...);
}

template <typename... P, typename... A>
void launch_cooperative(const char *name, void (*kernel)(P...), dim3 grid, dim3 block, A &&...args) {
  detail::start(name, true, kernel, grid, block, std::forward<A>(args)...);
}

// Blocks for a grid-stride kernel over `units` units, `perBlock` units to a block of `threads` threads:
// as many as the units need, and no more than one full wave of the device (every SM holding as many
// blocks of this kernel as fit at once), so huge tensors reuse blocks instead of queuing waves.
inline unsigned waveBlocks(size_t units, unsigned perBlock, int perSm) {
  const size_t wanted = std::max<size_t>(1, (units + perBlock - 1) / perBlock);
  const size_t wave = size_t(std::max(perSm, 1)) * size_t(std::max(device().smCount, 1));
  return static_cast<unsigned>(std::min({wanted, wave, size_t(device().maxGridX)}));
}

template <typename... P>
dim3 gridFor(void (*kernel)(P...), size_t units, unsigned perBlock, unsigned threads) {
  return dim3(waveBlocks(units, perBlock, blocksPerSm(reinterpret_cast<const void *>(kernel), threads)));
}

// One unit per thread: element-wise kernels.
template <typename... P>
dim3 gridFor(void (*kernel)(P...), size_t n, unsigned threads) {
  return gridFor(kernel, n, threads, threads);
}

// launch() of a grid-stride kernel over n elements in blocks of `threads`.
template <typename... P, typename... A>
void launchOver(const char *name, void (*kernel)(P...), size_t n, unsigned threads, A &&...args) {
  launch(name, kernel, gridFor(kernel, n, threads), dim3(threads), std::forward<A>(args)...);
}

// launch_cooperative() of a grid-stride kernel over `units` units, `perBlock` of them to a block.
template <typename... P, typename... A>
void launchCooperativeOver(const char *name, void (*kernel)(P...), size_t units, unsigned perBlock, dim3 block, A &&...args) {
  launch_cooperative(name, kernel, gridFor(kernel, units, perBlock, block.x * block.y * block.z), block, std::forward<A>(args)...);
}

}  // namespace simtrip::cuda
