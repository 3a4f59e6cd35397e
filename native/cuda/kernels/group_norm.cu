// Normalisation over channel groups of channels-last tensors (norm.h), forward and backward. Batch
// norm is the case of one segment and one channel per group, so SimtripBatchNormTrain and
// SimtripGroupNorm both run these kernels; the formulas are those of native/onednn/group_norm.cc and
// batch_norm.cc.
//
// Forward:
//  1. Welford partials per (segment, row chunk, channel) of x minus a pivot, the group's first value:
//     the running sums then stay near the spread of the data instead of its mean, so the statistics do
//     not cancel however far the mean is from zero. A block merges its rows; enough blocks fill the GPU.
//  2. One warp per (segment, group) merges the group's chunks x channels into its mean and variance
//     and writes per-channel constants.
//  3. One element-wise pass: y = (x - mean) * gamma * rstd + beta.
// Backward:
//  1. Partial sums of dy and dy * (x - mean) per (segment, row chunk, channel), as in the forward.
//  2. dbeta and dgamma per channel: sums over segments and chunks.
//  3. One warp per group: dx = rstd * (gamma*dy - mean(gamma*dy) - xhat * mean(gamma*dy*xhat)) as
//     dx = A*dy + B*(x - mean) + C with per-channel A, B, C.
//  4. One element-wise pass for dx.
// x and dy are read as stored, float32 or halves (norm.h).
#include <cmath>
#include <string>

#include "../launch.h"
#include "../napi.h"
#include "block_reduce.cuh"
#include "channels.cuh"
#include "grid.cuh"
#include "norm.h"

namespace simtrip::cuda {

namespace {

// Sums of dy and dy * (x - mean) over some of one channel's values.
struct GradSums {
  float dy;
  float dyXc;
};

struct AddSums {
  __device__ __forceinline__ GradSums operator()(GradSums a, GradSums b) const { return {a.dy + b.dy, a.dyXc + b.dyXc}; }
};

struct MergeWelford {
  __device__ __forceinline__ Welford operator()(Welford a, Welford b) const { return welfordMerge(a, b); }
};

// The most blocks per SM a reduction pass uses (more chunks cost partials to merge), and the fewest
// rows a thread of a pass should own before more row chunks stop paying for their partials. The
// element-wise passes fill the SMs with as many blocks as fit (their per-channel constants take
// registers, so fewer may fit than a plain element-wise kernel's).
constexpr int kReduceBlocksPerSm = 4;
constexpr size_t kMinRowsPerThread = 4;
// Warps per block of the per-group kernels (one warp per (segment, group)).
constexpr unsigned kGroupWarps = 8;

// One wave of `kernel`'s blocks of kColumnThreads, at most `cap` per SM.
template <class Kernel>
unsigned blocksFor(Kernel kernel, int cap = 1 << 30) {
  const int perSm = std::min(cap, blocksPerSm(reinterpret_cast<const void *>(kernel), kColumnThreads));
  return static_cast<unsigned>(std::max(1, device().smCount)) * static_cast<unsigned>(perSm);
}

template <int V, class X>
__global__ void welfordPartialsKernel(const X *__restrict__ x, size_t rows, int channels, int groupSize, Welford *__restrict__ partials) {
  const int c = packChannel(V);
  const bool owner = c < channels;
  const X *segment = x + size_t(blockIdx.z) * rows * channels;
  Welford acc[V] = {};
  if (owner) {
    float pivot[V];
    for (int v = 0; v < V; v++) pivot[v] = loaded(segment[(c + v) / groupSize * groupSize]);
    for (size_t r = firstRow(); r < rows; r += rowStride()) {
      const Pack<V> p = loadPack<V>(segment + r * channels + c);
      for (int v = 0; v < V; v++) acc[v] = welfordAdd(acc[v], p.v[v] - pivot[v]);
    }
  }
  mergeOverY(acc, MergeWelford());
  if (owner && threadIdx.y == 0) {
    Welford *out = partials + (size_t(blockIdx.z) * gridDim.y + blockIdx.y) * channels + c;
    for (int v = 0; v < V; v++) out[v] = acc[v];
  }
}

// The (segment, group) of this warp: false past the last one (whole warps leave together, so the
// shuffles after it always see full warps).
__device__ __forceinline__ bool warpGroup(const NormShape &shape, size_t &pair, size_t &segment, int &firstChannel) {
  pair = size_t(blockIdx.x) * kGroupWarps + threadIdx.x / warpSize;
  if (pair >= shape.stats()) return false;
  segment = pair / shape.groups();
  firstChannel = static_cast<int>(pair % shape.groups()) * shape.groupSize;
  return true;
}

__device__ __forceinline__ float broadcast(float v) { return __shfl_sync(0xffffffffu, v, 0); }

template <class X>
__global__ void groupStatsKernel(const X *__restrict__ x, const Welford *__restrict__ partials, const float *__restrict__ gamma,
                                 NormShape shape, int chunks, double eps, float *__restrict__ mean, float *__restrict__ variance,
                                 float *__restrict__ center, float *__restrict__ scale) {
  size_t pair, s;
  int first;
  if (!warpGroup(shape, pair, s, first)) return;
  const int lane = threadIdx.x % warpSize;
  const int cg = shape.groupSize;
  const size_t channels = static_cast<size_t>(shape.channels);
  // Every chunk of every channel of the group holds Welford sums of x minus the same pivot.
  const Welford *group = partials + s * chunks * channels + first;
  Welford w{0.f, 0.f, 0.f};
  for (int i = lane; i < chunks * cg; i += warpSize) w = welfordMerge(w, group[size_t(i / cg) * channels + i % cg]);
  w = warpReduceWelford(w);
  const float count = broadcast(w.count), shifted = broadcast(w.mean), m2 = broadcast(w.m2);
  const float mu = loaded(x[s * shape.rows * channels + first]) + shifted;
  const float var = m2 > 0.f ? m2 / count : 0.f;
  const double rstd = 1.0 / sqrt(static_cast<double>(var) + eps);
  if (lane == 0) {
    mean[pair] = mu;
    variance[pair] = var;
  }
  for (int k = lane; k < cg; k += warpSize) {
    center[s * channels + first + k] = mu;
    scale[s * channels + first + k] = static_cast<float>(gamma[first + k] * rstd);
  }
}

template <int V, class X>
__global__ void normalizeKernel(const X *__restrict__ x, const float *__restrict__ center, const float *__restrict__ scale,
                                const float *__restrict__ offset, float *__restrict__ y, size_t rows, int channels) {
  const int c = packChannel(V);
  if (c >= channels) return;
  const size_t constants = size_t(blockIdx.z) * channels + c;
  const Pack<V> m = loadPack<V>(center + constants), a = loadPack<V>(scale + constants), b = loadPack<V>(offset + c);
  const size_t base = size_t(blockIdx.z) * rows * channels + c;
  for (size_t r = firstRow(); r < rows; r += rowStride()) {
    Pack<V> p = loadPack<V>(x + base + r * channels);
    for (int v = 0; v < V; v++) p.v[v] = (p.v[v] - m.v[v]) * a.v[v] + b.v[v];
    storePack<V>(y + base + r * channels, p);
  }
}

template <int V, class Dy, class X>
__global__ void gradPartialsKernel(const Dy *__restrict__ dy, const X *__restrict__ x, const float *__restrict__ mean, size_t rows,
                                   int channels, int groupSize, GradSums *__restrict__ partials) {
  const int c = packChannel(V);
  const bool owner = c < channels;
  const size_t base = size_t(blockIdx.z) * rows * channels + c;
  GradSums acc[V] = {};
  if (owner) {
    float mu[V];
    for (int v = 0; v < V; v++) mu[v] = mean[size_t(blockIdx.z) * (channels / groupSize) + (c + v) / groupSize];
    for (size_t r = firstRow(); r < rows; r += rowStride()) {
      const Pack<V> g = loadPack<V>(dy + base + r * channels);
      const Pack<V> in = loadPack<V>(x + base + r * channels);
      for (int v = 0; v < V; v++) {
        acc[v].dy += g.v[v];
        acc[v].dyXc += g.v[v] * (in.v[v] - mu[v]);
      }
    }
  }
  mergeOverY(acc, AddSums());
  if (owner && threadIdx.y == 0) {
    GradSums *out = partials + (size_t(blockIdx.z) * gridDim.y + blockIdx.y) * channels + c;
    for (int v = 0; v < V; v++) out[v] = acc[v];
  }
}

__device__ __forceinline__ double rstdOf(float variance, double eps) { return 1.0 / sqrt(static_cast<double>(variance) + eps); }

// dbeta = sum(dy), dgamma = sum(dy * xhat) per channel: a column reduction over the partials of
// every (segment, chunk), the second sum scaled by its segment's rstd.
__global__ void paramGradsKernel(const GradSums *__restrict__ partials, const float *__restrict__ variance, NormShape shape, int chunks,
                                 double eps, float *__restrict__ dgamma, float *__restrict__ dbeta) {
  const int c = packChannel(1);
  const bool owner = c < shape.channels;
  GradSums acc[1] = {};
  if (owner) {
    const size_t items = size_t(shape.segments) * chunks;
    const int group = c / shape.groupSize;
    for (size_t i = firstRow(); i < items; i += rowStride()) {
      const GradSums p = partials[i * shape.channels + c];
      const float rstd = static_cast<float>(rstdOf(variance[(i / chunks) * shape.groups() + group], eps));
      acc[0].dy += p.dy;
      acc[0].dyXc += p.dyXc * rstd;
    }
  }
  mergeOverY(acc, AddSums());
  if (owner && threadIdx.y == 0) {
    dbeta[c] = acc[0].dy;
    dgamma[c] = acc[0].dyXc;
  }
}

__global__ void gradCoefficientsKernel(const GradSums *__restrict__ partials, const float *__restrict__ gamma, const float *__restrict__ mean,
                                       const float *__restrict__ variance, NormShape shape, int chunks, double eps, float *__restrict__ center,
                                       float *__restrict__ coefDy, float *__restrict__ coefXc, float *__restrict__ coefBias) {
  size_t pair, s;
  int first;
  if (!warpGroup(shape, pair, s, first)) return;
  const int lane = threadIdx.x % warpSize;
  const int cg = shape.groupSize;
  const size_t channels = static_cast<size_t>(shape.channels);
  const GradSums *group = partials + s * chunks * channels + first;
  // sum(gamma*dy) and sum(gamma*dy*(x - mean)) over the group.
  GradSums w{0.f, 0.f};
  for (int i = lane; i < chunks * cg; i += warpSize) {
    const GradSums p = group[size_t(i / cg) * channels + i % cg];
    const float g = gamma[first + i % cg];
    w.dy += g * p.dy;
    w.dyXc += g * p.dyXc;
  }
  const float sumA = broadcast(warpReduce(w.dy, SumOp())), sumB = broadcast(warpReduce(w.dyXc, SumOp()));
  const double rstd = rstdOf(variance[pair], eps);
  const double n = static_cast<double>(shape.rows) * cg;
  const double meanA = sumA / n, meanB = sumB * rstd / n;
  const float b = static_cast<float>(-rstd * rstd * meanB), bias = static_cast<float>(-rstd * meanA);
  for (int k = lane; k < cg; k += warpSize) {
    const size_t at = s * channels + first + k;
    center[at] = mean[pair];
    coefDy[at] = static_cast<float>(rstd * gamma[first + k]);
    coefXc[at] = b;
    coefBias[at] = bias;
  }
}

template <int V, class Dy, class X>
__global__ void gradInputKernel(const Dy *__restrict__ dy, const X *__restrict__ x, const float *__restrict__ center,
                                const float *__restrict__ coefDy, const float *__restrict__ coefXc, const float *__restrict__ coefBias,
                                float *__restrict__ dx, size_t rows, int channels) {
  const int c = packChannel(V);
  if (c >= channels) return;
  const size_t constants = size_t(blockIdx.z) * channels + c;
  const Pack<V> m = loadPack<V>(center + constants), a = loadPack<V>(coefDy + constants);
  const Pack<V> b = loadPack<V>(coefXc + constants), k = loadPack<V>(coefBias + constants);
  const size_t base = size_t(blockIdx.z) * rows * channels + c;
  for (size_t r = firstRow(); r < rows; r += rowStride()) {
    const Pack<V> g = loadPack<V>(dy + base + r * channels);
    Pack<V> p = loadPack<V>(x + base + r * channels);
    for (int v = 0; v < V; v++) p.v[v] = a.v[v] * g.v[v] + b.v[v] * (p.v[v] - m.v[v]) + k.v[v];
    storePack<V>(dx + base + r * channels, p);
  }
}

dim3 groupWarpsGrid(const NormShape &shape) { return dim3(static_cast<unsigned>((shape.stats() + kGroupWarps - 1) / kGroupWarps)); }

template <class Kernel>
ColumnGrid reductionGrid(Kernel kernel, const NormShape &shape, int v) {
  return columnGrid(shape.segments, shape.rows, shape.channels / v, 32, blocksFor(kernel, kReduceBlocksPerSm), kMinRowsPerThread);
}

template <class Kernel>
ColumnGrid elementwiseGrid(Kernel kernel, const NormShape &shape, int v) {
  return columnGrid(shape.segments, shape.rows, shape.channels / v, 32, blocksFor(kernel), kMinRowsPerThread);
}

template <int V, class X>
void normalizeAs(const X *x, const float *center, const float *scale, const float *offset, float *y, const NormShape &shape) {
  const ColumnGrid g = elementwiseGrid(normalizeKernel<V, X>, shape, V);
  launch("normalizeColumns", normalizeKernel<V, X>, g.grid, g.block, x, center, scale, offset, y, shape.rows, shape.channels);
}

template <int V, class Dy, class X>
void gradInputAs(const Dy *dy, const X *x, const float *center, const float *coefDy, const float *coefXc, const float *coefBias, float *dx,
                 const NormShape &shape) {
  const ColumnGrid g = elementwiseGrid(gradInputKernel<V, Dy, X>, shape, V);
  launch("normGradInput", gradInputKernel<V, Dy, X>, g.grid, g.block, dy, x, center, coefDy, coefXc, coefBias, dx, shape.rows, shape.channels);
}

template <int V, class X>
void forwardAs(const X *x, const float *gamma, const float *beta, float *y, float *mean, float *variance, const NormShape &shape, double eps) {
  const ColumnGrid g = reductionGrid(welfordPartialsKernel<V, X>, shape, V);
  const int chunks = static_cast<int>(g.grid.y);
  const size_t perChannel = size_t(shape.segments) * shape.channels;
  Scratch partials(sizeof(Welford) * perChannel * chunks);
  Scratch constants(2 * sizeof(float) * perChannel);
  float *center = constants.as<float>(), *scale = center + perChannel;
  launch_cooperative("normStatsPartials", welfordPartialsKernel<V, X>, g.grid, g.block, x, shape.rows, shape.channels, shape.groupSize,
                     partials.as<Welford>());
  launch_cooperative("normStats", groupStatsKernel<X>, groupWarpsGrid(shape), dim3(kGroupWarps * kWarpSize), x, partials.as<Welford>(), gamma, shape,
                     chunks, eps, mean, variance, center, scale);
  normalizeColumns(x, center, scale, beta, y, shape);
}

template <int V, class Dy, class X>
void backwardAs(const Dy *dy, const X *x, const float *gamma, const float *mean, const float *variance, float *dx, float *dgamma,
                float *dbeta, const NormShape &shape, double eps) {
  const ColumnGrid g = reductionGrid(gradPartialsKernel<V, Dy, X>, shape, V);
  const int chunks = static_cast<int>(g.grid.y);
  const size_t perChannel = size_t(shape.segments) * shape.channels;
  Scratch partials(sizeof(GradSums) * perChannel * chunks);
  Scratch constants(4 * sizeof(float) * perChannel);
  float *center = constants.as<float>(), *coefDy = center + perChannel, *coefXc = coefDy + perChannel, *coefBias = coefXc + perChannel;
  launch_cooperative("normGradPartials", gradPartialsKernel<V, Dy, X>, g.grid, g.block, dy, x, mean, shape.rows, shape.channels, shape.groupSize,
                     partials.as<GradSums>());
  // Narrow blocks across the channels: the partials are few rows, and more blocks share them.
  const ColumnGrid p = columnGrid(1, size_t(shape.segments) * chunks, shape.channels, 8, 1, 1);
  launch_cooperative("normParamGrads", paramGradsKernel, p.grid, p.block, partials.as<GradSums>(), variance, shape, chunks, eps, dgamma, dbeta);
  launch_cooperative("normGradCoefficients", gradCoefficientsKernel, groupWarpsGrid(shape), dim3(kGroupWarps * kWarpSize), partials.as<GradSums>(),
                     gamma, mean, variance, shape, chunks, eps, center, coefDy, coefXc, coefBias);
  if (V == 4 && alignedFor(4, center, coefDy, coefXc, coefBias)) {
    gradInputAs<V, Dy, X>(dy, x, center, coefDy, coefXc, coefBias, dx, shape);
  } else {
    gradInputAs<1, Dy, X>(dy, x, center, coefDy, coefXc, coefBias, dx, shape);
  }
}

NormShape shapeArg(const Args &args, size_t first, const char *who) {
  const NormShape shape{args.integer(first, "segments"), args.size(first + 1, "rows"), args.integer(first + 2, "channels"),
                        args.integer(first + 3, "groupSize")};
  checkNormShape(shape, who);
  return shape;
}

}  // namespace

void checkNormShape(const NormShape &shape, const char *who) {
  if (shape.segments <= 0 || shape.rows == 0 || shape.channels <= 0 || shape.groupSize <= 0) {
    throw ArgError(std::string(who) + ": sizes must be positive");
  }
  if (shape.channels % shape.groupSize != 0) throw ArgError(std::string(who) + ": channels must split evenly into groups");
  if (shape.segments > 65535) throw ArgError(std::string(who) + ": more than 65535 samples");
}

template <class X>
void normalizeColumns(const X *x, const float *center, const float *scale, const float *offset, float *y, const NormShape &shape) {
  if (shape.channels % 4 == 0 && alignedFor(4, x, center, scale, offset, y)) {
    normalizeAs<4>(x, center, scale, offset, y, shape);
  } else {
    normalizeAs<1>(x, center, scale, offset, y, shape);
  }
}

template <class X>
void normForward(const X *x, const float *gamma, const float *beta, float *y, float *mean, float *variance, const NormShape &shape,
                 double eps) {
  if (shape.channels % 4 == 0 && alignedFor(4, x)) {
    forwardAs<4>(x, gamma, beta, y, mean, variance, shape, eps);
  } else {
    forwardAs<1>(x, gamma, beta, y, mean, variance, shape, eps);
  }
}

template <class Dy, class X>
void normBackward(const Dy *dy, const X *x, const float *gamma, const float *mean, const float *variance, float *dx, float *dgamma,
                  float *dbeta, const NormShape &shape, double eps) {
  if (shape.channels % 4 == 0 && alignedFor(4, dy, x, dx)) {
    backwardAs<4>(dy, x, gamma, mean, variance, dx, dgamma, dbeta, shape, eps);
  } else {
    backwardAs<1>(dy, x, gamma, mean, variance, dx, dgamma, dbeta, shape, eps);
  }
}

template void normalizeColumns(const float *, const float *, const float *, const float *, float *, const NormShape &);
template void normalizeColumns(const Half *, const float *, const float *, const float *, float *, const NormShape &);
template void normForward(const float *, const float *, const float *, float *, float *, float *, const NormShape &, double);
template void normForward(const Half *, const float *, const float *, float *, float *, float *, const NormShape &, double);
template void normBackward(const float *, const float *, const float *, const float *, const float *, float *, float *, float *, const NormShape &,
                           double);
template void normBackward(const float *, const Half *, const float *, const float *, const float *, float *, float *, float *, const NormShape &,
                           double);
template void normBackward(const Half *, const float *, const float *, const float *, const float *, float *, float *, float *, const NormShape &,
                           double);
template void normBackward(const Half *, const Half *, const float *, const float *, const float *, float *, float *, float *, const NormShape &,
                           double);

namespace {

// f(pointer) with argument i as the device pointer of a float32 tensor, or of a half-stored one.
template <class F>
void withFloatsOrHalves(const Args &args, size_t i, const char *what, bool half, F f) {
  if (half) {
    f(args.ptr<const Half>(i, what));
  } else {
    f(args.ptr<const float>(i, what));
  }
}

}  // namespace

// (x, gamma, beta, y, mean, variance, segments, rows, channels, groupSize, eps[, storage]); statistics
// [segments * groups]; storage bit 0: x is stored as halves.
SIMTRIP_EXPORT(groupNormForward) {
  args.need(11, "groupNormForward");
  const NormShape shape = shapeArg(args, 6, "groupNormForward");
  const int storage = args.count > 11 ? args.integer(11, "storage") : 0;
  withFloatsOrHalves(args, 0, "x", storage & 1, [&](auto x) {
    normForward(x, args.ptr<const float>(1, "gamma"), args.ptr<const float>(2, "beta"), args.ptr<float>(3, "y"), args.ptr<float>(4, "mean"),
                args.ptr<float>(5, "variance"), shape, args.number(10, "eps"));
  });
  return undefined(args.env);
}

// (dy, x, gamma, mean, variance, dx, dgamma, dbeta, segments, rows, channels, groupSize, eps[, storage]);
// storage bit 0: dy is stored as halves, bit 1: x.
SIMTRIP_EXPORT(groupNormBackward) {
  args.need(13, "groupNormBackward");
  const NormShape shape = shapeArg(args, 8, "groupNormBackward");
  const int storage = args.count > 13 ? args.integer(13, "storage") : 0;
  withFloatsOrHalves(args, 0, "dy", storage & 1, [&](auto dy) {
    withFloatsOrHalves(args, 1, "x", storage & 2, [&](auto x) {
      normBackward(dy, x, args.ptr<const float>(2, "gamma"), args.ptr<const float>(3, "mean"), args.ptr<const float>(4, "variance"),
                   args.ptr<float>(5, "dx"), args.ptr<float>(6, "dgamma"), args.ptr<float>(7, "dbeta"), shape, args.number(12, "eps"));
    });
  });
  return undefined(args.env);
}

}  // namespace simtrip::cuda
