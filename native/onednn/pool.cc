// Max pooling forward and backward on NHWC, written by hand rather than with oneDNN so that ties,
// NaN and -Infinity follow tfjs-backend-cpu exactly: the first strictly greater value in row-major
// window order wins, NaN never wins, and a window with no winner passes no gradient.
#include <cmath>
#include <limits>
#include <vector>

#include "common.h"

namespace simtrip {

namespace {

// Int32Array layout shared with src/engine/onednn/kernels/pool.ts.
enum P { N, IH, IW, C, OH, OW, KH, KW, SH, SW, PT, PL, COUNT };

struct PoolGeometry {
  int64_t p[COUNT];
  explicit PoolGeometry(const int32_t *raw) {
    for (int i = 0; i < COUNT; i++) p[i] = raw[i];
    for (int i = 0; i < COUNT; i++) {
      if (p[i] < 0) throw ArgError("maxPool: negative geometry parameter");
    }
    if (p[SH] == 0 || p[SW] == 0) throw ArgError("maxPool: zero stride");
  }
  size_t inSize() const { return p[N] * p[IH] * p[IW] * p[C]; }
  size_t outSize() const { return p[N] * p[OH] * p[OW] * p[C]; }
  // Clipped window rows/cols [lo, hi) for output coordinate o.
  void rows(int64_t o, int64_t *lo, int64_t *hi) const {
    const int64_t corner = o * p[SH] - p[PT];
    *lo = std::max<int64_t>(0, corner);
    *hi = std::min<int64_t>(p[IH], corner + p[KH]);
  }
  void cols(int64_t o, int64_t *lo, int64_t *hi) const {
    const int64_t corner = o * p[SW] - p[PL];
    *lo = std::max<int64_t>(0, corner);
    *hi = std::min<int64_t>(p[IW], corner + p[KW]);
  }
};

}  // namespace

// (x, out, params)
void maxPool(napi_env env, napi_value *args, size_t argc) {
  if (argc < 3) throw ArgError("maxPool: expected 3 arguments");
  I32View raw = i32Arg(env, args[2], "params", COUNT);
  const PoolGeometry g(raw.data);
  const F32View x = f32Arg(env, args[0], "x", g.inSize());
  const F32View y = f32Arg(env, args[1], "out", g.outSize());
  const int64_t n = g.p[N], oh = g.p[OH], ow = g.p[OW], c = g.p[C], ih = g.p[IH], iw = g.p[IW];
  const float *xs = x.data;
  float *ys = y.data;

#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < n; b++) {
    for (int64_t r = 0; r < oh; r++) {
      int64_t r0, r1;
      g.rows(r, &r0, &r1);
      for (int64_t q = 0; q < ow; q++) {
        int64_t c0, c1;
        g.cols(q, &c0, &c1);
        float *out = ys + ((b * oh + r) * ow + q) * c;
        for (int64_t d = 0; d < c; d++) out[d] = -std::numeric_limits<float>::infinity();
        for (int64_t xr = r0; xr < r1; xr++) {
          for (int64_t xc = c0; xc < c1; xc++) {
            const float *in = xs + ((b * ih + xr) * iw + xc) * c;
            for (int64_t d = 0; d < c; d++) out[d] = in[d] > out[d] ? in[d] : out[d];
          }
        }
      }
    }
  }
}

// (dy, x, dxOut, params)
void maxPoolGrad(napi_env env, napi_value *args, size_t argc) {
  if (argc < 4) throw ArgError("maxPoolGrad: expected 4 arguments");
  I32View raw = i32Arg(env, args[3], "params", COUNT);
  const PoolGeometry g(raw.data);
  const F32View dy = f32Arg(env, args[0], "dy", g.outSize());
  const F32View x = f32Arg(env, args[1], "x", g.inSize());
  const F32View dx = f32Arg(env, args[2], "out", g.inSize());
  const int64_t n = g.p[N], oh = g.p[OH], ow = g.p[OW], c = g.p[C], ih = g.p[IH], iw = g.p[IW];
  const float *xs = x.data;
  const float *dys = dy.data;
  float *dxs = dx.data;
  std::fill(dxs, dxs + dx.length, 0.f);

  // Windows of different images never overlap, so images are the unit of parallel work.
#pragma omp parallel
  {
    std::vector<float> best(c);
    std::vector<int64_t> where(c);
#pragma omp for schedule(static)
    for (int64_t b = 0; b < n; b++) {
      for (int64_t r = 0; r < oh; r++) {
        int64_t r0, r1;
        g.rows(r, &r0, &r1);
        for (int64_t q = 0; q < ow; q++) {
          int64_t c0, c1;
          g.cols(q, &c0, &c1);
          std::fill(best.begin(), best.end(), -std::numeric_limits<float>::infinity());
          std::fill(where.begin(), where.end(), -1);
          for (int64_t xr = r0; xr < r1; xr++) {
            for (int64_t xc = c0; xc < c1; xc++) {
              const int64_t base = ((b * ih + xr) * iw + xc) * c;
              for (int64_t d = 0; d < c; d++) {
                if (xs[base + d] > best[d]) {
                  best[d] = xs[base + d];
                  where[d] = base + d;
                }
              }
            }
          }
          const float *g_out = dys + ((b * oh + r) * ow + q) * c;
          for (int64_t d = 0; d < c; d++) {
            if (where[d] >= 0) dxs[where[d]] += g_out[d];
          }
        }
      }
    }
  }
}

}  // namespace simtrip
