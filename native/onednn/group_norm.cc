// GroupNorm over NHWC tensors (BiT ResNet-v2), forward and backward. Per sample n the channels split
// into G contiguous groups; each (n, g) is normalised over its HW x C/G values with the biased
// variance, then the per-channel affine applies. The composed tfjs version reshapes to 5-D and
// reduces over non-trailing axes, which the cpu backend does element by element; here every pass is
// a contiguous sweep over the rows of one sample. Sums are taken in double around a pivot (the
// group's first value), as in batch_norm.cc, so the result does not depend on the thread count.
#include <omp.h>

#include <cmath>
#include <vector>

#include "common.h"
#include "group_norm.h"

namespace simtrip {

namespace {

// Int32Array layout shared with src/engine/onednn/kernels/group_norm.ts.
enum P { N, HW, C, G, COUNT };

struct GnShape {
  int64_t n, hw, c, g, cg;
  explicit GnShape(const int32_t *raw) : n(raw[N]), hw(raw[HW]), c(raw[C]), g(raw[G]), cg(0) {
    if (n <= 0 || hw <= 0 || c <= 0 || g <= 0) throw ArgError("groupNorm: sizes must be positive");
    if (c % g != 0) throw ArgError("groupNorm: channels must split evenly into groups");
    cg = c / g;
  }
  size_t size() const { return static_cast<size_t>(n * hw * c); }
  size_t stats() const { return static_cast<size_t>(n * g); }
};

}  // namespace

bool groupNormLayoutFits(const GroupNormLayout &l) {
  if (l.n <= 0 || l.hw <= 0 || l.c <= 0 || l.groups <= 0 || l.block <= 0) return false;
  if (l.c % l.groups != 0 || l.c % l.block != 0) return false;
  const int64_t cg = l.c / l.groups;
  return l.block % cg == 0 || cg % l.block == 0;
}

void groupNormForwardSweep(const float *x, float *y, const float *gamma, const float *beta, double eps,
                           const GroupNormLayout &l, bool relu, float *meanOut, float *varOut) {
  if (!groupNormLayoutFits(l)) throw ArgError("groupNorm: the channels do not split into groups in this layout");
  const int64_t cg = l.c / l.groups;
  // A group is `chunks` runs of `width` channels (one run in NHWC); each run holds hw rows `block` apart.
  const int64_t width = cg < l.block ? cg : l.block;
  const int64_t chunks = cg / width;
  const int64_t blocks = l.c / l.block;
  auto runStart = [&](int64_t n, int64_t channel) { return (n * blocks + channel / l.block) * l.hw * l.block + channel % l.block; };

  // One (n, g) pair per iteration: samples x groups gives enough parallel work even at batch 1.
#pragma omp parallel for schedule(static)
  for (int64_t ng = 0; ng < l.n * l.groups; ng++) {
    const int64_t n = ng / l.groups, g = ng % l.groups;
    const double pivot = x[runStart(n, g * cg)];
    double s1 = 0.0, s2 = 0.0;
    for (int64_t j = 0; j < chunks; j++) {
      const float *base = x + runStart(n, g * cg + j * width);
      for (int64_t r = 0; r < l.hw; r++) {
        const float *row = base + r * l.block;
        for (int64_t k = 0; k < width; k++) {
          const double d = static_cast<double>(row[k]) - pivot;
          s1 += d;
          s2 += d * d;
        }
      }
    }
    const double m = static_cast<double>(l.hw * cg);
    const double dm = s1 / m;
    const float mean = static_cast<float>(pivot + dm);
    const float var = static_cast<float>(std::max(0.0, s2 / m - dm * dm));
    if (meanOut) meanOut[ng] = mean;
    if (varOut) varOut[ng] = var;
    const double rstd = 1.0 / std::sqrt(static_cast<double>(var) + eps);
    for (int64_t j = 0; j < chunks; j++) {
      const int64_t c0 = g * cg + j * width;
      const int64_t off = runStart(n, c0);
      for (int64_t r = 0; r < l.hw; r++) {
        const float *in = x + off + r * l.block;
        float *out = y + off + r * l.block;
        for (int64_t k = 0; k < width; k++) {
          const float v = static_cast<float>((in[k] - mean) * rstd) * gamma[c0 + k] + beta[c0 + k];
          out[k] = relu && v < 0.f ? 0.f : v;
        }
      }
    }
  }
}

// (x, gamma, beta, yOut, meanOut[N*G], varianceOut[N*G], params[N, HW, C, G], eps)
void groupNormForward(napi_env env, napi_value *args, size_t argc) {
  if (argc < 8) throw ArgError("groupNormForward: expected 8 arguments");
  const GnShape s(i32Arg(env, args[6], "params", COUNT).data);
  const double eps = numberArg(env, args[7], "eps");
  const float *x = f32Arg(env, args[0], "x", s.size()).data;
  const float *gamma = f32Arg(env, args[1], "gamma", s.c).data;
  const float *beta = f32Arg(env, args[2], "beta", s.c).data;
  float *y = f32Arg(env, args[3], "y", s.size()).data;
  float *meanOut = f32Arg(env, args[4], "mean", s.stats()).data;
  float *varOut = f32Arg(env, args[5], "variance", s.stats()).data;
  // tfjs' NHWC is the layout with one block of all channels.
  groupNormForwardSweep(x, y, gamma, beta, eps, GroupNormLayout{s.n, s.hw, s.c, s.g, s.c}, false, meanOut, varOut);
}

// (dy, x, gamma, mean[N*G], variance[N*G], dxOut, dgammaOut, dbetaOut, params[N, HW, C, G], eps)
void groupNormBackward(napi_env env, napi_value *args, size_t argc) {
  if (argc < 10) throw ArgError("groupNormBackward: expected 10 arguments");
  const GnShape s(i32Arg(env, args[8], "params", COUNT).data);
  const double eps = numberArg(env, args[9], "eps");
  const float *dy = f32Arg(env, args[0], "dy", s.size()).data;
  const float *x = f32Arg(env, args[1], "x", s.size()).data;
  const float *gamma = f32Arg(env, args[2], "gamma", s.c).data;
  const float *mean = f32Arg(env, args[3], "mean", s.stats()).data;
  const float *variance = f32Arg(env, args[4], "variance", s.stats()).data;
  float *dx = f32Arg(env, args[5], "dx", s.size()).data;
  float *dgamma = f32Arg(env, args[6], "dgamma", s.c).data;
  float *dbeta = f32Arg(env, args[7], "dbeta", s.c).data;

  // Per (n, channel) partial sums of dy and dy*xhat: dgamma/dbeta are their sums over n, and the
  // per-group sums dx needs are sums of gamma-weighted partials over the group's channels.
  std::vector<double> pDy(static_cast<size_t>(s.n * s.c)), pDyXhat(static_cast<size_t>(s.n * s.c));
#pragma omp parallel for schedule(static)
  for (int64_t ng = 0; ng < s.n * s.g; ng++) {
    const int64_t n = ng / s.g, g = ng % s.g;
    const int64_t off = n * s.hw * s.c + g * s.cg;
    const double mu = mean[ng];
    const double rstd = 1.0 / std::sqrt(static_cast<double>(variance[ng]) + eps);
    double *a = pDy.data() + n * s.c + g * s.cg;
    double *b = pDyXhat.data() + n * s.c + g * s.cg;
    for (int64_t k = 0; k < s.cg; k++) a[k] = b[k] = 0.0;
    for (int64_t r = 0; r < s.hw; r++) {
      const float *gr = dy + off + r * s.c;
      const float *in = x + off + r * s.c;
      for (int64_t k = 0; k < s.cg; k++) {
        a[k] += gr[k];
        b[k] += static_cast<double>(gr[k]) * ((static_cast<double>(in[k]) - mu) * rstd);
      }
    }
    // dx = rstd * (dy*gamma - mean(dy*gamma) - xhat * mean(dy*gamma*xhat)) over the group.
    double sumA = 0.0, sumB = 0.0;
    for (int64_t k = 0; k < s.cg; k++) {
      sumA += gamma[g * s.cg + k] * a[k];
      sumB += gamma[g * s.cg + k] * b[k];
    }
    const double m = static_cast<double>(s.hw * s.cg);
    const double meanA = sumA / m, meanB = sumB / m;
    for (int64_t r = 0; r < s.hw; r++) {
      const float *gr = dy + off + r * s.c;
      const float *in = x + off + r * s.c;
      float *out = dx + off + r * s.c;
      for (int64_t k = 0; k < s.cg; k++) {
        const double xhat = (static_cast<double>(in[k]) - mu) * rstd;
        out[k] = static_cast<float>(rstd * (gr[k] * static_cast<double>(gamma[g * s.cg + k]) - meanA - xhat * meanB));
      }
    }
  }
  for (int64_t ch = 0; ch < s.c; ch++) {
    double a = 0.0, b = 0.0;
    for (int64_t n = 0; n < s.n; n++) {
      a += pDy[n * s.c + ch];
      b += pDyXhat[n * s.c + ch];
    }
    dbeta[ch] = static_cast<float>(a);
    dgamma[ch] = static_cast<float>(b);
  }
}

}  // namespace simtrip
