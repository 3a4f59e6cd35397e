// Batch normalisation with given statistics: tfjs' FusedBatchNorm, which BatchNorm layers run in
// evaluation (eval, embed). Training-mode batch norm (SimtripBatchNormTrain and its gradient) is group
// norm with one segment and one channel per group: group_norm.cu runs it.
//
// tfjs reads each parameter of length n at flat index i % n. The TS side picks `channels`, a multiple
// of every parameter length that divides the tensor's size: the tensor is then [rows, channels] and
// every parameter a per-column constant, folded here into center/scale/offset for normalizeColumns.
#include <cmath>
#include <string>

#include "../launch.h"
#include "../napi.h"
#include "grid.cuh"
#include "norm.h"

namespace simtrip::cuda {

namespace {

struct Param {
  const float *values;  // null: the default (scale 1, offset 0)
  int length;
};

__device__ __forceinline__ float at(const Param &p, size_t c, float otherwise) { return p.values ? p.values[c % p.length] : otherwise; }

__global__ void inferenceConstantsKernel(Param mean, Param variance, Param scale, Param offset, double eps, int channels, float *__restrict__ center,
                                         float *__restrict__ factor, float *__restrict__ shift) {
  for (size_t c = gridFirst(); c < static_cast<size_t>(channels); c += gridStride()) {
    center[c] = at(mean, c, 0.f);
    factor[c] = static_cast<float>(at(scale, c, 1.f) / sqrt(static_cast<double>(at(variance, c, 0.f)) + eps));
    shift[c] = at(offset, c, 0.f);
  }
}

Param paramArg(const Args &args, size_t i, const char *what, int channels) {
  const Param p{args.ptr<const float>(i, what), args.integer(i + 1, what)};
  if (p.values && (p.length <= 0 || channels % p.length != 0)) {
    throw ArgError(std::string("batchNormInference: ") + what + " length must divide the channels");
  }
  return p;
}

}  // namespace

// (x, y, size, channels, mean, meanLength, variance, varianceLength, scale | 0, scaleLength,
//  offset | 0, offsetLength, eps[, xHalf]): y = offset + (x - mean) * scale / sqrt(variance + eps);
// xHalf: x is stored as halves.
SIMTRIP_EXPORT(batchNormInference) {
  args.need(13, "batchNormInference");
  const size_t size = args.size(2, "size");
  const int channels = args.integer(3, "channels");
  if (channels <= 0 || size % static_cast<size_t>(channels) != 0) throw ArgError("batchNormInference: channels must divide the size");
  const Param mean = paramArg(args, 4, "mean", channels), variance = paramArg(args, 6, "variance", channels);
  const Param scale = paramArg(args, 8, "scale", channels), offset = paramArg(args, 10, "offset", channels);
  if (!mean.values || !variance.values) throw ArgError("batchNormInference: mean and variance are required");
  if (size == 0) return undefined(args.env);
  const double eps = args.number(12, "eps");
  Scratch constants(3 * sizeof(float) * channels);
  float *center = constants.as<float>(), *factor = center + channels, *shift = factor + channels;
  launchOver("batchNormInferenceConstants", inferenceConstantsKernel, channels, 256, mean, variance, scale, offset, eps, channels,
         center, factor, shift);
  const NormShape shape{1, size / channels, channels, 1};
  if (args.count > 13 && args.flag(13, "xHalf")) {
    normalizeColumns(args.ptr<const Half>(0, "x"), center, factor, shift, args.ptr<float>(1, "y"), shape);
  } else {
    normalizeColumns(args.ptr<const float>(0, "x"), center, factor, shift, args.ptr<float>(1, "y"), shape);
  }
  return undefined(args.env);
}

}  // namespace simtrip::cuda
