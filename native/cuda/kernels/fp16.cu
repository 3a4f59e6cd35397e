// Mixed precision (engine.precision mixed16): the rounding of float32 values to the half grid, and the
// finiteness check of dynamic loss scaling (src/optim/loss_scale.ts).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "../../shared/half_bits.h"
#include "../launch.h"
#include "../napi.h"
#include "grid.cuh"
#include "half_storage.cuh"

namespace simtrip::cuda {

namespace {

// The rounding of mixed16, stored as halves: half the bytes, read back exactly (halfToFloatKernel).
__global__ void roundIntoHalvesKernel(const uint32_t *__restrict__ x, uint16_t *__restrict__ h, size_t n) {
  for (size_t i = gridFirst(); i < n; i += gridStride()) h[i] = halfBitsOfGridFloat(roundToHalfBits(x[i]));
}

// ReLU on halves, as the float kernel computes it: negatives (and -0) to +0, NaN kept.
__global__ void reluHalvesKernel(const uint16_t *__restrict__ x, uint16_t *__restrict__ y, size_t n) {
  for (size_t i = gridFirst(); i < n; i += gridStride()) {
    const uint16_t h = x[i];
    const bool nan = (h & 0x7c00u) == 0x7c00u && (h & 0x3ffu) != 0;
    y[i] = (h & 0x8000u) && !nan ? uint16_t(0) : h;
  }
}

__global__ void halfToFloatKernel(const uint16_t *__restrict__ h, uint32_t *__restrict__ y, size_t n) {
  for (size_t i = gridFirst(); i < n; i += gridStride()) y[i] = floatBitsOfHalf(h[i]);
}

// Tensors per launch of the finiteness check: their pointers and sizes travel as the kernel's
// parameters (1 KiB of the 4 KiB allowed), so nothing is uploaded and the host never waits.
constexpr int kTensorsPerLaunch = 64;

struct TensorList {
  const void *data[kTensorsPerLaunch];
  size_t size[kTensorsPerLaunch];
  bool half[kTensorsPerLaunch];  // stored as halves (mixed16 gradients on the half grid)
  int count;
};

__global__ void setTrueKernel(int32_t *flag) { *flag = 1; }

// Clears the flag when any element is Inf or NaN (all exponent bits set, in a float or a half). Every
// writer stores the same 0, so no atomics are needed; the flag is set to 1 before the first launch.
__global__ void clearIfNonFiniteKernel(TensorList list, int32_t *flag) {
  uint32_t nonFinite = 0;
  for (int t = 0; t < list.count; t++) {
    if (list.half[t]) {
      const Half *data = static_cast<const Half *>(list.data[t]);
      for (size_t i = gridFirst(); i < list.size[t]; i += gridStride()) nonFinite |= isNonFinite(data[i]);
    } else {
      const uint32_t *data = static_cast<const uint32_t *>(list.data[t]);
      for (size_t i = gridFirst(); i < list.size[t]; i += gridStride()) nonFinite |= (data[i] & 0x7f800000u) == 0x7f800000u;
    }
  }
  if (nonFinite) *flag = 0;
}

}  // namespace

// (x, out, n): out (n halves) = x rounded to the half grid, stored as IEEE halves.
SIMTRIP_EXPORT(roundIntoHalves) {
  args.need(3, "roundIntoHalves");
  const size_t n = args.size(2, "n");
  launchOver("roundIntoHalves", roundIntoHalvesKernel, n, 256, args.ptr<const uint32_t>(0, "x"), args.ptr<uint16_t>(1, "out"), n);
  return undefined(args.env);
}

// (halves, out halves, n): ReLU on half storage.
SIMTRIP_EXPORT(reluHalves) {
  args.need(3, "reluHalves");
  const size_t n = args.size(2, "n");
  launchOver("reluHalves", reluHalvesKernel, n, 256, args.ptr<const uint16_t>(0, "halves"), args.ptr<uint16_t>(1, "out"), n);
  return undefined(args.env);
}

// (halves, out, n): out (float32) = the halves' values.
SIMTRIP_EXPORT(halfToFloat) {
  args.need(3, "halfToFloat");
  const size_t n = args.size(2, "n");
  launchOver("halfToFloat", halfToFloatKernel, n, 256, args.ptr<const uint16_t>(0, "halves"), args.ptr<uint32_t>(1, "out"), n);
  return undefined(args.env);
}

// (out, tensors: Float64Array [ptr0, size0, half0, ptr1, size1, half1, ...]): out (int32) = 1 when every
// element of every float32 tensor is finite, else 0; half is 1 for a tensor stored as halves, else 0.
SIMTRIP_EXPORT(allFinite) {
  args.need(2, "allFinite");
  int32_t *flag = args.ptr<int32_t>(0, "out");
  const BytesView table = args.bytes(1, "tensors");
  if (table.bytes % (3 * sizeof(double)) != 0) throw ArgError("allFinite: tensors must hold (pointer, size, half) triples of doubles");
  const size_t count = table.bytes / (3 * sizeof(double));
  std::vector<double> entries(3 * count);
  std::memcpy(entries.data(), table.data, table.bytes);
  launch("allFiniteInit", setTrueKernel, dim3(1), dim3(1), flag);
  size_t largest = 0;  // threads for the largest tensor; the others take fewer grid-stride steps
  TensorList list{};
  const auto flush = [&] {
    if (list.count == 0) return;
    launchOver("allFinite", clearIfNonFiniteKernel, largest, 256, list, flag);
    list = TensorList{};
    largest = 0;
  };
  for (size_t i = 0; i < count; i++) {
    const double ptr = entries[3 * i], size = entries[3 * i + 1], half = entries[3 * i + 2];
    if (!(ptr >= 0) || !(size >= 0) || ptr != std::floor(ptr) || size != std::floor(size) || (half != 0 && half != 1)) {
      throw ArgError("allFinite: bad tensor entry");
    }
    if (size == 0) continue;
    list.data[list.count] = reinterpret_cast<const void *>(static_cast<uintptr_t>(ptr));
    list.size[list.count] = static_cast<size_t>(size);
    list.half[list.count] = half != 0;
    list.count++;
    largest = std::max(largest, static_cast<size_t>(size));
    if (list.count == kTensorsPerLaunch) flush();
  }
  flush();
  return undefined(args.env);
}

}  // namespace simtrip::cuda
