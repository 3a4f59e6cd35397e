// Layout kernels that the strided copy of transpose.cu cannot express: concatenation (each output
// element gathered from its input), padding (constant, reflect, symmetric), gather along an axis and
// one-hot. All move 4-byte words, so one kernel serves float32, int32 and bool.
#include <string>
#include <vector>

#include "../launch.h"
#include "../napi.h"
#include "grid.cuh"

namespace simtrip::cuda {

namespace {

constexpr unsigned kThreads = 256;

// ---- concat ----

// Inputs per launch: their pointers travel in the kernel's parameters.
constexpr int kConcatInputs = 8;

// Columns [first[s], first[s + 1]) of the launch's span come from src[s], a [rows, first[s+1] - first[s]]
// matrix.
struct ConcatSources {
  int count;
  const uint32_t *src[kConcatInputs];
  long long first[kConcatInputs + 1];
};

// dst[r, i] (row pitch `pitch`) for the span's columns i in [0, first[count]): the output is written in
// order and each input read in order, so both sides coalesce.
__global__ void concatKernel(ConcatSources in, uint32_t *__restrict__ dst, size_t pitch, size_t rows) {
  const size_t cols = static_cast<size_t>(in.first[in.count]);
  const size_t n = rows * cols;
  for (size_t i = gridFirst(); i < n; i += gridStride()) {
    const size_t r = i / cols;
    const long long c = static_cast<long long>(i % cols);
    int s = 0;
    while (c >= in.first[s + 1]) s++;
    const long long width = in.first[s + 1] - in.first[s];
    dst[r * pitch + c] = in.src[s][static_cast<long long>(r) * width + (c - in.first[s])];
  }
}

// dst = the inputs side by side: [rows, sum of widths], input s a [rows, widths[s]] matrix.
void concat(const uint32_t *const *src, const long long *widths, int count, uint32_t *dst, size_t rows) {
  long long pitch = 0;
  for (int s = 0; s < count; s++) pitch += widths[s];
  for (int start = 0; start < count; start += kConcatInputs) {
    ConcatSources in{};
    in.count = count - start < kConcatInputs ? count - start : kConcatInputs;
    long long offset = 0;
    for (int s = 0; s < in.count; s++) {
      in.src[s] = src[start + s];
      in.first[s] = offset;
      offset += widths[start + s];
    }
    in.first[in.count] = offset;
    if (offset > 0) launchOver("concat", concatKernel, rows * offset, kThreads, in, dst, static_cast<size_t>(pitch), rows);
    dst += offset;
  }
}

// ---- pad ----

enum class PadMode { Constant = 0, Reflect = 1, Symmetric = 2 };

struct PadView {
  int rank;
  int inShape[kMaxRank];
  int before[kMaxRank];
  int outShape[kMaxRank];
};

// dst[i over outShape] = src at i's coordinates less `before`; outside src, `value` (constant mode) or
// the coordinate mirrored back in (reflect: about the edge element, symmetric: about the edge itself),
// as tfjs' MirrorPad computes it.
__global__ void padKernel(const uint32_t *__restrict__ src, uint32_t *__restrict__ dst, PadView view, PadMode mode, uint32_t value, size_t n) {
  const int edge = mode == PadMode::Symmetric ? 1 : 0;
  for (size_t i = gridFirst(); i < n; i += gridStride()) {
    size_t rest = i;
    long long offset = 0, stride = 1;
    bool inside = true;
    for (int d = view.rank - 1; d >= 0; d--) {
      const int size = view.inShape[d];
      int c = static_cast<int>(rest % static_cast<size_t>(view.outShape[d])) - view.before[d];
      rest /= static_cast<size_t>(view.outShape[d]);
      if (c < 0 || c >= size) {
        if (mode == PadMode::Constant) inside = false;
        c = c < 0 ? -c - edge : 2 * (size - 1) - c + edge;
      }
      offset += c * stride;
      stride *= size;
    }
    dst[i] = inside ? src[offset] : value;
  }
}

// ---- gather, one-hot ----

// out[b, o, j, s] = x[b, o, indices[b, j], s]; an index outside [0, dimSize) gives 0.
__global__ void gatherKernel(const uint32_t *__restrict__ x, const int *__restrict__ indices, uint32_t *__restrict__ out, size_t outer,
                             size_t dimSize, size_t count, size_t slice, size_t n) {
  for (size_t i = gridFirst(); i < n; i += gridStride()) {
    const size_t s = i % slice;
    const size_t j = (i / slice) % count;
    const size_t bo = i / slice / count;  // b * outer + o
    const int index = indices[bo / outer * count + j];
    out[i] = index >= 0 && static_cast<size_t>(index) < dimSize ? x[(bo * dimSize + index) * slice + s] : 0u;
  }
}

__global__ void oneHotKernel(const int *__restrict__ indices, uint32_t *__restrict__ out, int depth, uint32_t on, uint32_t off, size_t n) {
  for (size_t i = gridFirst(); i < n; i += gridStride()) out[i] = indices[i / depth] == static_cast<int>(i % depth) ? on : off;
}

size_t sizeOf(const int *shape, int rank) {
  size_t n = 1;
  for (int d = 0; d < rank; d++) n *= static_cast<size_t>(shape[d]);
  return n;
}

}  // namespace

// (dst, rows, srcs: Float64Array of pointers, widths: Int32Array): dst = [rows, sum(widths)], the
// [rows, widths[s]] inputs side by side (4-byte elements).
SIMTRIP_EXPORT(concat) {
  args.need(4, "concat");
  uint32_t *dst = args.ptr<uint32_t>(0, "dst");
  const size_t rows = args.size(1, "rows");
  const BytesView srcs = args.bytes(2, "srcs");
  const size_t count = srcs.bytes / sizeof(double);
  const I32View widths = args.ints(3, "widths", count);
  std::vector<const uint32_t *> src(count);
  std::vector<long long> width(count);
  for (size_t s = 0; s < count; s++) {
    const double p = static_cast<const double *>(srcs.data)[s];
    if (!(p >= 0) || widths.data[s] < 0) throw ArgError("concat: bad input " + std::to_string(s));
    src[s] = reinterpret_cast<const uint32_t *>(static_cast<uintptr_t>(p));
    width[s] = widths.data[s];
  }
  concat(src.data(), width.data(), static_cast<int>(count), dst, rows);
  return undefined(args.env);
}

// (src, dst, mode: 0 constant / 1 reflect / 2 symmetric, value: the constant's 32 bits, inShape,
// before, outShape: Int32Array)
SIMTRIP_EXPORT(pad) {
  args.need(7, "pad");
  const int mode = args.integer(2, "mode");
  if (mode < 0 || mode > 2) throw ArgError("pad: mode must be 0, 1 or 2");
  const I32View inShape = args.anyInts(4, "inShape");
  const I32View before = args.ints(5, "before", inShape.length);
  const I32View outShape = args.ints(6, "outShape", inShape.length);
  if (inShape.length > static_cast<size_t>(kMaxRank)) throw ArgError("pad: rank above " + std::to_string(kMaxRank));
  PadView view{};
  view.rank = static_cast<int>(inShape.length);
  for (int d = 0; d < view.rank; d++) {
    view.inShape[d] = inShape.data[d];
    view.before[d] = before.data[d];
    view.outShape[d] = outShape.data[d];
  }
  const size_t n = sizeOf(view.outShape, view.rank);
  if (n > 0) {
    launchOver("pad", padKernel, n, kThreads, args.ptr<const uint32_t>(0, "src"), args.ptr<uint32_t>(1, "dst"), view,
           static_cast<PadMode>(mode), static_cast<uint32_t>(args.integer(3, "value")), n);
  }
  return undefined(args.env);
}

// (x, indices, out, batch, outer, dimSize, count, slice): x is [batch, outer, dimSize, slice],
// indices [batch, count] int32, out [batch, outer, count, slice].
SIMTRIP_EXPORT(gather) {
  args.need(8, "gather");
  const size_t batch = args.size(3, "batch"), outer = args.size(4, "outer"), dimSize = args.size(5, "dimSize");
  const size_t count = args.size(6, "count"), slice = args.size(7, "slice");
  const size_t n = batch * outer * count * slice;
  if (n > 0) {
    launchOver("gather", gatherKernel, n, kThreads, args.ptr<const uint32_t>(0, "x"), args.ptr<const int>(1, "indices"),
           args.ptr<uint32_t>(2, "out"), outer, dimSize, count, slice, n);
  }
  return undefined(args.env);
}

// (indices, out, count, depth, on, off): out[j, d] = indices[j] == d ? on : off, on and off as 32 bits.
SIMTRIP_EXPORT(oneHot) {
  args.need(6, "oneHot");
  const size_t count = args.size(2, "count");
  const int depth = args.integer(3, "depth");
  if (depth < 0) throw ArgError("oneHot: negative depth");
  const size_t n = count * static_cast<size_t>(depth);
  if (n > 0) {
    launchOver("oneHot", oneHotKernel, n, kThreads, args.ptr<const int>(0, "indices"), args.ptr<uint32_t>(1, "out"), depth,
           static_cast<uint32_t>(args.integer(4, "on")), static_cast<uint32_t>(args.integer(5, "off")), n);
  }
  return undefined(args.env);
}

}  // namespace simtrip::cuda
