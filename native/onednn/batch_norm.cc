// Training-mode batch normalisation over every axis but the last, on tensors viewed as [M, C] rows
// (NHWC and [N, C] are both that). Written as OpenMP loops rather than with oneDNN's primitive:
// the work is memory-bound, two passes each way suffice, and statistics accumulate in double so the
// result does not depend on the thread count or on how large the batch mean is against its spread.
#include <omp.h>

#include <cmath>
#include <vector>

#include "common.h"

namespace simtrip {

namespace {

// Int32Array layout shared with src/engine/onednn/kernels/batch_norm.ts.
enum P { M, C, COUNT };

struct BnShape {
  int64_t rows, channels;
  explicit BnShape(const int32_t *raw) : rows(raw[M]), channels(raw[C]) {
    if (rows <= 0 || channels <= 0) throw ArgError("batchNorm: rows and channels must be positive");
  }
  size_t size() const { return static_cast<size_t>(rows) * static_cast<size_t>(channels); }
};

// Per-channel sums of f(row, c) over all rows, each thread summing a contiguous block of rows into its
// own slots; the fixed block split keeps the result independent of scheduling.
template <typename F>
void channelSums(const BnShape &s, double *sumA, double *sumB, F &&term) {
  const int64_t c = s.channels;
  const int threads = omp_get_max_threads();
  std::vector<double> partial(static_cast<size_t>(threads) * 2 * c, 0.0);
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num();
    const int nt = omp_get_num_threads();
    double *a = partial.data() + static_cast<size_t>(t) * 2 * c;
    double *b = a + c;
    const int64_t r0 = s.rows * t / nt, r1 = s.rows * (t + 1) / nt;
    for (int64_t r = r0; r < r1; r++) term(r, a, b);
  }
  for (int64_t k = 0; k < c; k++) sumA[k] = sumB[k] = 0.0;
  for (int t = 0; t < threads; t++) {
    const double *a = partial.data() + static_cast<size_t>(t) * 2 * c;
    for (int64_t k = 0; k < c; k++) {
      sumA[k] += a[k];
      sumB[k] += a[c + k];
    }
  }
}

}  // namespace

// (x, gamma, beta, yOut, meanOut, varianceOut, params[M, C], eps[, relu]): with relu, y = max(y, 0) in
// the same pass (NaN kept), saving the ReLU's own read and write of the activation.
void batchNormForward(napi_env env, napi_value *args, size_t argc) {
  if (argc < 8) throw ArgError("batchNormForward: expected 8 arguments");
  const BnShape s(i32Arg(env, args[6], "params", COUNT).data);
  const double eps = numberArg(env, args[7], "eps");
  bool relu = false;
  if (argc > 8 && napi_get_value_bool(env, args[8], &relu) != napi_ok) throw ArgError("batchNormForward: relu must be a boolean");
  const int64_t c = s.channels;
  const float *x = f32Arg(env, args[0], "x", s.size()).data;
  const float *gamma = f32Arg(env, args[1], "gamma", c).data;
  const float *beta = f32Arg(env, args[2], "beta", c).data;
  float *y = f32Arg(env, args[3], "y", s.size()).data;
  float *meanOut = f32Arg(env, args[4], "mean", c).data;
  float *varOut = f32Arg(env, args[5], "variance", c).data;

  // Sums are taken around the first row, which keeps sum of squares minus squared sum well conditioned
  // in a single pass even when the mean is far from zero.
  std::vector<double> pivot(x, x + c), s1(c), s2(c);
  channelSums(s, s1.data(), s2.data(), [&](int64_t r, double *a, double *b) {
    const float *row = x + r * c;
    for (int64_t k = 0; k < c; k++) {
      const double d = static_cast<double>(row[k]) - pivot[k];
      a[k] += d;
      b[k] += d * d;
    }
  });
  const double n = static_cast<double>(s.rows);
  std::vector<float> mean(c), scale(c);
  for (int64_t k = 0; k < c; k++) {
    const double dm = s1[k] / n;
    const double var = std::max(0.0, s2[k] / n - dm * dm);
    mean[k] = static_cast<float>(pivot[k] + dm);
    meanOut[k] = mean[k];
    varOut[k] = static_cast<float>(var);
    scale[k] = static_cast<float>(gamma[k] / std::sqrt(static_cast<double>(varOut[k]) + eps));
  }
  // (x - mean) * scale rather than x * scale + shift: no cancellation when |mean| >> std.
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < s.rows; r++) {
    const float *in = x + r * c;
    float *out = y + r * c;
    for (int64_t k = 0; k < c; k++) out[k] = (in[k] - mean[k]) * scale[k] + beta[k];
    if (relu) {
      for (int64_t k = 0; k < c; k++) out[k] = reluOf(out[k]);
    }
  }
}

namespace {

// The gradient reaching the normalisation: dy itself, or through a fused ReLU dy * step(y) with y the
// forward's output, the product tfjs' ReLU gradient forms (so NaN and infinities behave alike). A
// template parameter rather than a null check, so the plain loops stay as they were.
template <bool kRelu>
inline float incoming(const float *dy, const float *y, size_t i) {
  if (!kRelu) return dy[i];
  return dy[i] * stepOf(y[i], 0.f);
}

template <bool kRelu>
void normBackward(const BnShape &s, double eps, const float *dy, const float *y, const float *x, const float *gamma,
                  const float *mean, const float *variance, float *dx, float *dgamma, float *dbeta) {
  const int64_t c = s.channels;
  std::vector<double> sumDy(c), sumDyXc(c);
  channelSums(s, sumDy.data(), sumDyXc.data(), [&](int64_t r, double *a, double *b) {
    const float *in = x + r * c;
    for (int64_t k = 0; k < c; k++) {
      const float g = incoming<kRelu>(dy, y, static_cast<size_t>(r * c + k));
      a[k] += g;
      b[k] += static_cast<double>(g) * (static_cast<double>(in[k]) - mean[k]);
    }
  });
  // dx = gamma*rstd * (dy - mean(dy) - xhat*mean(dy*xhat)), with xhat = (x - mean)*rstd folded into
  // per-channel constants so the second pass is one fused expression.
  const double n = static_cast<double>(s.rows);
  std::vector<float> a(c), meanDy(c), k2(c);
  for (int64_t k = 0; k < c; k++) {
    const double rstd = 1.0 / std::sqrt(static_cast<double>(variance[k]) + eps);
    dbeta[k] = static_cast<float>(sumDy[k]);
    dgamma[k] = static_cast<float>(sumDyXc[k] * rstd);
    a[k] = static_cast<float>(gamma[k] * rstd);
    meanDy[k] = static_cast<float>(sumDy[k] / n);
    k2[k] = static_cast<float>(sumDyXc[k] * rstd * rstd / n);
  }
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < s.rows; r++) {
    const float *in = x + r * c;
    float *out = dx + r * c;
    for (int64_t k = 0; k < c; k++) {
      out[k] = a[k] * (incoming<kRelu>(dy, y, static_cast<size_t>(r * c + k)) - meanDy[k] - (in[k] - mean[k]) * k2[k]);
    }
  }
}

}  // namespace

// (dy, x, gamma, mean, variance, dxOut, dgammaOut, dbetaOut, params[M, C], eps[, y]): with y (the
// forward's output of a fused ReLU), dy is masked by it on the fly, saving a separate ReLU gradient pass.
void batchNormBackward(napi_env env, napi_value *args, size_t argc) {
  if (argc < 10) throw ArgError("batchNormBackward: expected 10 arguments");
  const BnShape s(i32Arg(env, args[8], "params", COUNT).data);
  const double eps = numberArg(env, args[9], "eps");
  const int64_t c = s.channels;
  const float *dy = f32Arg(env, args[0], "dy", s.size()).data;
  const float *x = f32Arg(env, args[1], "x", s.size()).data;
  const float *gamma = f32Arg(env, args[2], "gamma", c).data;
  const float *mean = f32Arg(env, args[3], "mean", c).data;
  const float *variance = f32Arg(env, args[4], "variance", c).data;
  float *dx = f32Arg(env, args[5], "dx", s.size()).data;
  float *dgamma = f32Arg(env, args[6], "dgamma", c).data;
  float *dbeta = f32Arg(env, args[7], "dbeta", c).data;
  const float *y = argc > 10 ? optionalF32Arg(env, args[10], "y", s.size()).data : nullptr;
  if (y) normBackward<true>(s, eps, dy, y, x, gamma, mean, variance, dx, dgamma, dbeta);
  else normBackward<false>(s, eps, dy, y, x, gamma, mean, variance, dx, dgamma, dbeta);
}

}  // namespace simtrip
