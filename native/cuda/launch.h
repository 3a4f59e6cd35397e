// Kernel launches that read the same in both builds: launch(name, kernel, grid, block, args...).
// launch_cooperative is for kernels whose threads cooperate (shared memory with __syncthreads, warp
// shuffles): on the GPU it is the same launch, in the host build it runs every thread as a fiber.
#pragma once

#include <tuple>
#include <type_traits>
#include <utility>

#include "compat.h"
#include "runtime.h"

namespace simtrip::cuda {

namespace detail {

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
  // Converted to the kernel's parameter types here, as a <<<>>> launch would.
  std::tuple<std::decay_t<P>...> values(std::forward<A>(args)...);
#ifdef SIMTRIP_HOST_EMU
  emu::run(name, grid, block, cooperative, [&] { std::apply(kernel, values); });
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

// Blocks of `threads` covering n elements with a grid-stride loop; capped so huge tensors reuse blocks.
inline dim3 gridFor(size_t n, unsigned threads, unsigned maxBlocks = 65535u * 8u) {
  size_t blocks = (n + threads - 1) / threads;
  if (blocks > maxBlocks) blocks = maxBlocks;
  return dim3(static_cast<unsigned>(blocks > 0 ? blocks : 1));
}

}  // namespace simtrip::cuda
