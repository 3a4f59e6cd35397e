// Layout copies: a general strided gather, and a tiled 2-D transpose for the common big case (filters
// between tfjs' HWIO and cuDNN's KRSC, matrices in matmul gradients) where the gather's strided reads
// would waste most of each memory transaction.
#include <algorithm>
#include <string>
#include <type_traits>

#include "../launch.h"
#include "../napi.h"
#include "transpose.h"

namespace simtrip::cuda {

namespace {

// T: uint32_t for 4-byte elements, uint16_t for halves; the copies move bits, whatever they mean.
template <class T>
__global__ void stridedCopyKernel(const T *__restrict__ src, T *__restrict__ dst, Strided view, size_t n) {
  for (size_t i = gridFirst(); i < n; i += gridStride()) dst[i] = src[stridedOffset(view, i)];
}

constexpr int kTile = 32;
constexpr int kRowsPerPass = 8;

// One 32x32 tile at a time per block, staged through shared memory so both the read and the write are
// coalesced; the extra column keeps the column-wise reads free of bank conflicts. The tile holds
// 4-byte words whatever T is: halves packed two to a word would put a column's reads on 16 banks.
// Blocks walk the tiles in grid-stride loops along y (row tiles) and z (matrices), so a matrix of more
// than 65,535 row tiles (a [N*H*W, C] activation of over 2.1 M rows) or batches of more than 65,535
// matrices fit the grid's limits; every thread of a block runs the same iterations, so the barriers
// are met.
template <class T>
__global__ void transposeTileKernel(const T *__restrict__ src, T *__restrict__ dst, int batch, int rows, int cols) {
  __shared__ uint32_t tile[kTile][kTile + 1];
  const int rowTiles = (rows + kTile - 1) / kTile;
  const int c0 = blockIdx.x * kTile;
  for (int b = blockIdx.z; b < batch; b += gridDim.z) {
    const size_t matrix = size_t(b) * rows * cols;
    for (int rt = blockIdx.y; rt < rowTiles; rt += gridDim.y) {
      const int r0 = rt * kTile;
      for (int dr = threadIdx.y; dr < kTile; dr += kRowsPerPass) {
        const int r = r0 + dr, c = c0 + threadIdx.x;
        if (r < rows && c < cols) tile[dr][threadIdx.x] = src[matrix + size_t(r) * cols + c];
      }
      __syncthreads();
      for (int dc = threadIdx.y; dc < kTile; dc += kRowsPerPass) {
        const int c = c0 + dc, r = r0 + threadIdx.x;
        if (r < rows && c < cols) dst[matrix + size_t(c) * rows + r] = static_cast<T>(tile[threadIdx.x][dc]);
      }
      // The tile is refilled by the next iteration.
      __syncthreads();
    }
  }
}

size_t sizeOf(const Strided &view) {
  size_t n = 1;
  for (int d = 0; d < view.rank; d++) n *= static_cast<size_t>(view.shape[d]);
  return n;
}

// Calls f with a null pointer of the unsigned integer type of elementBytes (uint32_t or uint16_t).
template <class F>
void withElementType(size_t elementBytes, const char *fn, F &&f) {
  if (elementBytes == 4) return f(static_cast<uint32_t *>(nullptr));
  if (elementBytes == 2) return f(static_cast<uint16_t *>(nullptr));
  throw std::invalid_argument(std::string(fn) + ": elements of " + std::to_string(elementBytes) + " bytes");
}

}  // namespace

void stridedCopy(const void *src, void *dst, const Strided &view, size_t elementBytes) {
  const size_t n = sizeOf(view);
  if (n == 0) return;
  withElementType(elementBytes, "stridedCopy", [&](auto *type) {
    using T = std::remove_pointer_t<decltype(type)>;
    launchOver("stridedCopy", stridedCopyKernel<T>, n, 256, static_cast<const T *>(src), static_cast<T *>(dst), view, n);
  });
}

dim3 transposeGrid(int batch, int rows, int cols) {
  const DeviceInfo &d = device();
  const unsigned colTiles = static_cast<unsigned>((cols + kTile - 1) / kTile);
  const unsigned rowTiles = static_cast<unsigned>((rows + kTile - 1) / kTile);
  return dim3(colTiles, std::min(rowTiles, d.maxGridY), std::min(static_cast<unsigned>(batch), d.maxGridZ));
}

void transpose2d(const void *src, void *dst, int batch, int rows, int cols, size_t elementBytes) {
  if (batch <= 0 || rows <= 0 || cols <= 0) return;
  withElementType(elementBytes, "transpose2d", [&](auto *type) {
    using T = std::remove_pointer_t<decltype(type)>;
    launch_cooperative("transpose2d", transposeTileKernel<T>, transposeGrid(batch, rows, cols), dim3(kTile, kRowsPerPass),
                       static_cast<const T *>(src), static_cast<T *>(dst), batch, rows, cols);
  });
}

// (src, dst, shape: Int32Array, strides: Int32Array): dst[i over shape] = src[offset(i) via strides].
SIMTRIP_EXPORT(stridedCopy) {
  args.need(4, "stridedCopy");
  const I32View shape = args.anyInts(2, "shape");
  const I32View strides = args.ints(3, "strides", shape.length);
  if (shape.length > static_cast<size_t>(kMaxRank)) throw ArgError("stridedCopy: rank above " + std::to_string(kMaxRank));
  Strided view{};
  view.rank = static_cast<int>(shape.length);
  for (int d = 0; d < view.rank; d++) {
    view.shape[d] = shape.data[d];
    view.strides[d] = strides.data[d];
  }
  stridedCopy(args.ptr(0, "src"), args.ptr(1, "dst"), view);
  return undefined(args.env);
}

// (src, dst, batch, rows, cols[, elementBytes: 4 (default) or 2])
SIMTRIP_EXPORT(transpose2d) {
  args.need(5, "transpose2d");
  const size_t elementBytes = args.count > 5 ? args.size(5, "elementBytes") : 4;
  transpose2d(args.ptr(0, "src"), args.ptr(1, "dst"), args.integer(2, "batch"), args.integer(3, "rows"), args.integer(4, "cols"), elementBytes);
  return undefined(args.env);
}

// (batch, rows, cols) -> [x, y, z]: the grid transpose2d launches (tests of the launch limits).
SIMTRIP_EXPORT(transposeGrid) {
  args.need(3, "transposeGrid");
  const dim3 g = transposeGrid(args.integer(0, "batch"), args.integer(1, "rows"), args.integer(2, "cols"));
  napi_value out;
  napi_create_array_with_length(args.env, 3, &out);
  const unsigned v[3] = {g.x, g.y, g.z};
  for (uint32_t i = 0; i < 3; i++) napi_set_element(args.env, out, i, number(args.env, v[i]));
  return out;
}

}  // namespace simtrip::cuda
