// Max and average pooling on NHWC, forward and backward, as our own kernels rather than cuDNN's so
// that every detail follows tfjs-backend-cpu (and PyTorch):
//  - a window's maximum is its first strictly greater value in row-major window order: ties go to
//    the first, NaN never wins, and a window with no winner (all -Infinity or NaN) outputs -Infinity
//    and passes no gradient. ReLU outputs tie at 0 all the time, so the tie rule changes gradients;
//  - padding is never a candidate ('same' pads are skipped, not zeros); the average divides by the
//    window's elements inside the input, while its gradient divides by the full window size (tfjs'
//    own pair of rules, kept as is);
//  - gradients are gathers: each input element sums the outputs whose window covers it, in ascending
//    output order, so there are no atomics and the result is deterministic. Max pooling's backward
//    first records each window's winner (one int per output), then gathers.
// Threads run along channels, the fastest NHWC dimension, so neighbouring threads read neighbouring
// addresses for every window element.
#include <algorithm>
#include <cmath>
#include <string>

#include "../launch.h"
#include "../napi.h"
#include "nhwc.cuh"

namespace simtrip::cuda {

namespace {

// Int32Array layout shared with src/engine/cuda/kernels/pool.ts.
enum P { N, IH, IW, C, OH, OW, KH, KW, SH, SW, PT, PL, COUNT };

struct PoolGeometry {
  int n, h, w, c;
  int outH, outW;
  int kh, kw;
  int sh, sw;
  int top, left;

  size_t inputSize() const { return size_t(n) * h * w * c; }
  size_t outputSize() const { return size_t(n) * outH * outW * c; }
  // What the kernels' index must count to: each indexes both tensors.
  size_t indexRange() const { return std::max(inputSize(), outputSize()); }
};

PoolGeometry geometry(const I32View &p, const char *fn) {
  for (int i = 0; i < COUNT; i++) {
    const bool positive = i < PT;
    if (positive ? p.data[i] <= 0 : p.data[i] < 0) throw ArgError(std::string(fn) + ": params[" + std::to_string(i) + "] out of range");
  }
  return PoolGeometry{p.data[N], p.data[IH], p.data[IW], p.data[C], p.data[OH], p.data[OW], p.data[KH],
                      p.data[KW], p.data[SH], p.data[SW], p.data[PT], p.data[PL]};
}

// The part of one output's window that lies inside the input: rows [y0, y1), columns [x0, x1), and
// the window's unclipped corner (window positions count from it, as in tfjs).
struct Window {
  int cornerY, cornerX;
  int y0, y1, x0, x1;
};

__device__ __forceinline__ Window windowOf(const PoolGeometry &g, int oy, int ox) {
  Window win;
  win.cornerY = oy * g.sh - g.top;
  win.cornerX = ox * g.sw - g.left;
  win.y0 = std::max(win.cornerY, 0);
  win.y1 = std::min(win.cornerY + g.kh, g.h);
  win.x0 = std::max(win.cornerX, 0);
  win.x1 = std::min(win.cornerX + g.kw, g.w);
  return win;
}

struct WindowMax {
  float value;  // -Infinity when nothing won
  int at;       // row * kw + column within the window, -1 when nothing won
};

template <class Index>
__device__ __forceinline__ WindowMax windowMax(const float *__restrict__ x, const PoolGeometry &g, const NhwcPos<Index> &o) {
  const Window win = windowOf(g, o.y, o.x);
  WindowMax best{-INFINITY, -1};
  for (int y = win.y0; y < win.y1; y++) {
    for (int xx = win.x0; xx < win.x1; xx++) {
      const float v = x[nhwcOffset(o.b, y, xx, o.c, g.h, g.w, g.c)];
      if (v > best.value) best = WindowMax{v, (y - win.cornerY) * g.kw + (xx - win.cornerX)};
    }
  }
  return best;
}

template <class Index>
__global__ void maxPoolKernel(const float *__restrict__ x, float *__restrict__ y, PoolGeometry g, Index total) {
  for (Index i = Index(gridFirst()); i < total; i += Index(gridStride())) y[i] = windowMax(x, g, nhwcPos(i, g.outH, g.outW, g.c)).value;
}

template <class Index>
__global__ void maxPoolWinnerKernel(const float *__restrict__ x, int *__restrict__ winner, PoolGeometry g, Index total) {
  for (Index i = Index(gridFirst()); i < total; i += Index(gridStride())) winner[i] = windowMax(x, g, nhwcPos(i, g.outH, g.outW, g.c)).at;
}

template <class Index>
__global__ void avgPoolKernel(const float *__restrict__ x, float *__restrict__ y, PoolGeometry g, Index total) {
  for (Index i = Index(gridFirst()); i < total; i += Index(gridStride())) {
    const NhwcPos<Index> o = nhwcPos(i, g.outH, g.outW, g.c);
    const Window win = windowOf(g, o.y, o.x);
    float sum = 0.f;
    for (int yy = win.y0; yy < win.y1; yy++) {
      for (int xx = win.x0; xx < win.x1; xx++) sum += x[nhwcOffset(o.b, yy, xx, o.c, g.h, g.w, g.c)];
    }
    // An empty window (only possible with padding beyond the input) is 0 / 0 = NaN, as in tfjs.
    y[i] = sum / float((win.y1 - win.y0) * (win.x1 - win.x0));
  }
}

// The outputs [lo, hi] whose windows cover input position i along one dimension.
__device__ __forceinline__ void coveringOutputs(int i, int pad, int k, int stride, int outSize, int *lo, int *hi) {
  const int first = i + pad - k + 1;  // the lowest window corner (+ pad) that still reaches i
  *lo = first <= 0 ? 0 : (first + stride - 1) / stride;
  *hi = std::min((i + pad) / stride, outSize - 1);
}

// dx[i] = scale * the sum of dy over the windows covering input i; for max pooling (winner != null)
// only over the windows whose winner i is.
template <class Index>
__global__ void poolGradKernel(const float *__restrict__ dy, const int *__restrict__ winner, float *__restrict__ dx, PoolGeometry g,
                               float scale, Index total) {
  for (Index i = Index(gridFirst()); i < total; i += Index(gridStride())) {
    const NhwcPos<Index> p = nhwcPos(i, g.h, g.w, g.c);
    int oy0, oy1, ox0, ox1;
    coveringOutputs(p.y, g.top, g.kh, g.sh, g.outH, &oy0, &oy1);
    coveringOutputs(p.x, g.left, g.kw, g.sw, g.outW, &ox0, &ox1);
    float sum = 0.f;
    for (int oy = oy0; oy <= oy1; oy++) {
      const int row = p.y - (oy * g.sh - g.top);
      for (int ox = ox0; ox <= ox1; ox++) {
        const Index o = nhwcOffset(p.b, oy, ox, p.c, g.outH, g.outW, g.c);
        if (!winner || winner[o] == row * g.kw + (p.x - (ox * g.sw - g.left))) sum += dy[o];
      }
    }
    dx[i] = sum * scale;
  }
}

constexpr unsigned kThreads = 256;

// kernel<Index> over `total` elements with the narrowest index that counts to the larger of the
// input and the output: every kernel here indexes both (a forward pass reads a larger input than the
// output it counts, a gradient a smaller one).
#define SIMTRIP_POOL_LAUNCH(name, kernel, g, total, ...)                          \
  withIndexType((g).indexRange(), [&](auto index) {                               \
    using Index = decltype(index);                                                \
    launchOver(name, kernel<Index>, total, kThreads, __VA_ARGS__, Index(total));  \
  })

}  // namespace

// (x, out, params)
SIMTRIP_EXPORT(maxPool) {
  args.need(3, "maxPool");
  const PoolGeometry g = geometry(args.ints(2, "params", COUNT), "maxPool");
  const float *x = args.ptr<float>(0, "x");
  float *y = args.ptr<float>(1, "out");
  SIMTRIP_POOL_LAUNCH("maxPool", maxPoolKernel, g, g.outputSize(), x, y, g);
  return undefined(args.env);
}

// (dy, x, dxOut, params)
SIMTRIP_EXPORT(maxPoolGrad) {
  args.need(4, "maxPoolGrad");
  const PoolGeometry g = geometry(args.ints(3, "params", COUNT), "maxPoolGrad");
  const float *dy = args.ptr<float>(0, "dy");
  const float *x = args.ptr<float>(1, "x");
  float *dx = args.ptr<float>(2, "out");
  Scratch winner(g.outputSize() * sizeof(int));
  SIMTRIP_POOL_LAUNCH("maxPoolWinner", maxPoolWinnerKernel, g, g.outputSize(), x, winner.as<int>(), g);
  SIMTRIP_POOL_LAUNCH("maxPoolGrad", poolGradKernel, g, g.inputSize(), dy, winner.as<const int>(), dx, g, 1.f);
  return undefined(args.env);
}

// (x, out, params)
SIMTRIP_EXPORT(avgPool) {
  args.need(3, "avgPool");
  const PoolGeometry g = geometry(args.ints(2, "params", COUNT), "avgPool");
  const float *x = args.ptr<float>(0, "x");
  float *y = args.ptr<float>(1, "out");
  SIMTRIP_POOL_LAUNCH("avgPool", avgPoolKernel, g, g.outputSize(), x, y, g);
  return undefined(args.env);
}

// (dy, dxOut, params)
SIMTRIP_EXPORT(avgPoolGrad) {
  args.need(3, "avgPoolGrad");
  const PoolGeometry g = geometry(args.ints(2, "params", COUNT), "avgPoolGrad");
  const float *dy = args.ptr<float>(0, "dy");
  float *dx = args.ptr<float>(1, "out");
  const int *noWinner = nullptr;
  SIMTRIP_POOL_LAUNCH("avgPoolGrad", poolGradKernel, g, g.inputSize(), dy, noWinner, dx, g, 1.f / float(g.kh * g.kw));
  return undefined(args.env);
}

// (params) -> 32 or 64: the index width every pooling kernel of that geometry counts in (tests of the
// launch configuration at sizes too large to run here).
SIMTRIP_EXPORT(poolIndexBits) {
  args.need(1, "poolIndexBits");
  const PoolGeometry g = geometry(args.ints(0, "params", COUNT), "poolIndexBits");
  int bits = 0;
  withIndexType(g.indexRange(), [&](auto index) { bits = 8 * static_cast<int>(sizeof(index)); });
  return number(args.env, bits);
}

}  // namespace simtrip::cuda
