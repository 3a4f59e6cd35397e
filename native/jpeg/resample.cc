// See resample.h. Two passes: rows first into floats (only the rows the vertical pass reads), then
// columns, rounded once at the end so the two passes do not stack rounding errors.
#include "resample.h"

#include <algorithm>
#include <cmath>

namespace simtrip {

namespace {

constexpr double kPi = 3.14159265358979323846;

double sinc(double x) { return x == 0.0 ? 1.0 : std::sin(kPi * x) / (kPi * x); }

double support(Kernel k) {
  switch (k) {
    case Kernel::Nearest: return 0.5;
    case Kernel::Lanczos3: return 3.0;
    default: return 2.0;
  }
}

// Keys' cubic with b = 1/3, c = 1/3 (Mitchell-Netravali) or b = 0, c = 1/2 (Catmull-Rom).
double bicubic(double x, double b, double c) {
  x = std::fabs(x);
  if (x < 1) return ((12 - 9 * b - 6 * c) * x * x * x + (-18 + 12 * b + 6 * c) * x * x + (6 - 2 * b)) / 6;
  if (x < 2) return ((-b - 6 * c) * x * x * x + (6 * b + 30 * c) * x * x + (-12 * b - 48 * c) * x + (8 * b + 24 * c)) / 6;
  return 0;
}

double weight(Kernel k, double x) {
  switch (k) {
    case Kernel::Nearest: return x >= -0.5 && x < 0.5 ? 1.0 : 0.0;
    case Kernel::Cubic: return bicubic(x, 0.0, 0.5);
    case Kernel::Mitchell: return bicubic(x, 1.0 / 3, 1.0 / 3);
    case Kernel::Lanczos2: return std::fabs(x) < 2 ? sinc(x) * sinc(x / 2) : 0.0;
    case Kernel::Lanczos3: return std::fabs(x) < 3 ? sinc(x) * sinc(x / 3) : 0.0;
  }
  return 0.0;
}

// For each output pixel along one axis: the first source pixel it reads and its normalised weights.
struct Taps {
  int taps = 0;
  std::vector<int> first;
  std::vector<float> w;  // outSize x taps, zero-padded
};

Taps tapsFor(Window win, int srcSize, int outSize, Kernel k) {
  const double scale = win.length / outSize;
  // Reducing stretches the kernel over `scale` source pixels: the antialiasing a plain
  // interpolation (sharp's kernel at factor 1) would lack.
  // Nearest stays one source pixel wide at any factor, as sharp's is.
  const double stretch = k == Kernel::Nearest ? 1.0 : std::max(scale, 1.0);
  const double reach = support(k) * stretch;
  Taps t;
  t.taps = static_cast<int>(std::ceil(reach)) * 2 + 1;
  t.first.resize(outSize);
  t.w.assign(static_cast<size_t>(outSize) * t.taps, 0.f);
  for (int i = 0; i < outSize; i++) {
    const double centre = win.start + (i + 0.5) * scale;
    int lo = std::max(static_cast<int>(centre - reach + 0.5), 0);
    int hi = std::min(static_cast<int>(centre + reach + 0.5), srcSize);
    if (hi <= lo) {  // a window at the very edge: the nearest pixel
      lo = std::min(std::max(static_cast<int>(centre), 0), srcSize - 1);
      hi = lo + 1;
    }
    double sum = 0;
    std::vector<double> ws(hi - lo);
    for (int j = lo; j < hi; j++) sum += ws[j - lo] = weight(k, (j + 0.5 - centre) / stretch);
    if (sum == 0) {
      ws.assign(hi - lo, 0.0);
      ws[std::min(std::max(static_cast<int>(centre), lo), hi - 1) - lo] = 1.0;
      sum = 1.0;
    }
    t.first[i] = lo;
    for (int j = 0; j < hi - lo && j < t.taps; j++) t.w[static_cast<size_t>(i) * t.taps + j] = static_cast<float>(ws[j] / sum);
  }
  return t;
}

uint8_t toByte(float v) { return static_cast<uint8_t>(std::min(255.f, std::max(0.f, std::nearbyint(v)))); }

}  // namespace

void resampleRGB(const uint8_t *src, int srcW, int srcH, Window x, Window y, uint8_t *out, int outW, int outH,
                 Kernel kernel) {
  const Taps tx = tapsFor(x, srcW, outW, kernel);
  const Taps ty = tapsFor(y, srcH, outH, kernel);
  const int rowLo = ty.first.front();
  int rowHi = 0;
  for (int i = 0; i < outH; i++) rowHi = std::max(rowHi, std::min(ty.first[i] + ty.taps, srcH));

  std::vector<float> rows(static_cast<size_t>(rowHi - rowLo) * outW * 3);
  for (int r = rowLo; r < rowHi; r++) {
    const uint8_t *line = src + static_cast<size_t>(r) * srcW * 3;
    float *dst = rows.data() + static_cast<size_t>(r - rowLo) * outW * 3;
    for (int i = 0; i < outW; i++) {
      const float *w = tx.w.data() + static_cast<size_t>(i) * tx.taps;
      const int first = tx.first[i];
      const int n = std::min(tx.taps, srcW - first);
      float acc[3] = {0, 0, 0};
      for (int j = 0; j < n; j++) {
        const uint8_t *p = line + (first + j) * 3;
        acc[0] += w[j] * p[0];
        acc[1] += w[j] * p[1];
        acc[2] += w[j] * p[2];
      }
      dst[i * 3] = acc[0];
      dst[i * 3 + 1] = acc[1];
      dst[i * 3 + 2] = acc[2];
    }
  }
  // Row by row so the inner loop runs along contiguous memory (and vectorises).
  const int span = outW * 3;
  std::vector<float> acc(span);
  for (int o = 0; o < outH; o++) {
    const float *w = ty.w.data() + static_cast<size_t>(o) * ty.taps;
    const int first = ty.first[o];
    const int n = std::min(ty.taps, srcH - first);
    std::fill(acc.begin(), acc.end(), 0.f);
    for (int j = 0; j < n; j++) {
      const float *row = rows.data() + static_cast<size_t>(first + j - rowLo) * span;
      for (int c = 0; c < span; c++) acc[c] += w[j] * row[c];
    }
    uint8_t *dst = out + static_cast<size_t>(o) * span;
    for (int c = 0; c < span; c++) dst[c] = toByte(acc[c]);
  }
}

}  // namespace simtrip
