// The host build's convolutions: reference loops with cuDNN's contract (dnn.h), so conv.cu's layout
// handling, padding and epilogues run in the tests exactly as they do in front of cuDNN on the GPU.
// Sums are accumulated in double: this is the reference the GPU's results are judged against.
//
// Halves (Storage::Half) are read exactly, summed the same way and the float32 result rounded to the
// nearest half (ties to even) at the end: bit for bit what roundToHalf makes of the float32 path's
// output on the same halves, which is the emulation of mixed16 (src/ops/fp16_round.ts).
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "../../shared/half_bits.h"
#include "../conv_algos.h"
#include "../dnn.h"
#include "../runtime.h"

namespace simtrip::cuda {

namespace {

// The input row (or column) that filter tap t of output o reads; outside [0, size) it is padding.
inline int inputIndex(int o, int t, int stride, int dilation, int pad) { return o * stride + t * dilation - pad; }

// The output row that reads input row i through filter tap t, or -1 when none does.
inline int outputIndex(int i, int t, int stride, int dilation, int pad, int outSize) {
  const int span = i + pad - t * dilation;
  if (span < 0 || span % stride != 0) return -1;
  const int o = span / stride;
  return o < outSize ? o : -1;
}

// A tensor of `size` elements in `storage` as float32 values: the halves' exact values, or the floats.
std::vector<float> floats(const void *p, size_t size, Storage storage) {
  std::vector<float> out(size);
  if (storage == Storage::Float) {
    std::memcpy(out.data(), p, size * sizeof(float));
    return out;
  }
  const uint16_t *h = static_cast<const uint16_t *>(p);
  for (size_t i = 0; i < size; i++) {
    const uint32_t bits = floatBitsOfHalf(h[i]);
    std::memcpy(&out[i], &bits, sizeof bits);
  }
  return out;
}

// Stores float32 results into `storage`: as they are, or each rounded to the nearest half.
void store(const std::vector<float> &values, void *p, Storage storage) {
  if (storage == Storage::Float) {
    std::memcpy(p, values.data(), values.size() * sizeof(float));
    return;
  }
  uint16_t *h = static_cast<uint16_t *>(p);
  for (size_t i = 0; i < values.size(); i++) {
    uint32_t bits;
    std::memcpy(&bits, &values[i], sizeof bits);
    h[i] = halfBitsOfGridFloat(roundToHalfBits(bits));
  }
}

// Offset of element (b, y, x, c) in a [n, h, w, channels] tensor; filters are [k, r, s, c], the same shape.
inline size_t offset4(size_t b, int y, int x, int c, int h, int w, int channels) {
  return ((b * h + y) * w + x) * channels + c;
}

// Calls tap(r, s, iy, ix) for each filter tap of output (oy, ox) that reads inside the input.
template <class Tap>
void eachTap(const ConvShape &g, int oy, int ox, Tap tap) {
  for (int r = 0; r < g.r; r++) {
    const int iy = inputIndex(oy, r, g.strideH, g.dilationH, g.padH);
    if (iy < 0 || iy >= g.h) continue;
    for (int s = 0; s < g.s; s++) {
      const int ix = inputIndex(ox, s, g.strideW, g.dilationW, g.padW);
      if (ix < 0 || ix >= g.w) continue;
      tap(r, s, iy, ix);
    }
  }
}

void forward(const ConvShape &g, const float *x, const float *w, float *y) {
  std::vector<double> acc(g.k);
  for (int b = 0; b < g.n; b++) {
    for (int oy = 0; oy < g.outH; oy++) {
      for (int ox = 0; ox < g.outW; ox++) {
        std::fill(acc.begin(), acc.end(), 0.0);
        eachTap(g, oy, ox, [&](int r, int s, int iy, int ix) {
          const float *xp = x + offset4(b, iy, ix, 0, g.h, g.w, g.c);
          for (int k = 0; k < g.k; k++) {
            const float *wp = w + offset4(k, r, s, 0, g.r, g.s, g.c);
            double sum = 0;
            for (int c = 0; c < g.c; c++) sum += double(xp[c]) * wp[c];
            acc[k] += sum;
          }
        });
        float *yp = y + offset4(b, oy, ox, 0, g.outH, g.outW, g.k);
        for (int k = 0; k < g.k; k++) yp[k] = static_cast<float>(acc[k]);
      }
    }
  }
}

void backwardData(const ConvShape &g, const float *dy, const float *w, float *dx) {
  std::vector<double> acc(g.c);
  for (int b = 0; b < g.n; b++) {
    for (int iy = 0; iy < g.h; iy++) {
      for (int ix = 0; ix < g.w; ix++) {
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int r = 0; r < g.r; r++) {
          const int oy = outputIndex(iy, r, g.strideH, g.dilationH, g.padH, g.outH);
          if (oy < 0) continue;
          for (int s = 0; s < g.s; s++) {
            const int ox = outputIndex(ix, s, g.strideW, g.dilationW, g.padW, g.outW);
            if (ox < 0) continue;
            const float *dyp = dy + offset4(b, oy, ox, 0, g.outH, g.outW, g.k);
            for (int k = 0; k < g.k; k++) {
              const float *wp = w + offset4(k, r, s, 0, g.r, g.s, g.c);
              for (int c = 0; c < g.c; c++) acc[c] += double(dyp[k]) * wp[c];
            }
          }
        }
        float *dxp = dx + offset4(b, iy, ix, 0, g.h, g.w, g.c);
        for (int c = 0; c < g.c; c++) dxp[c] = static_cast<float>(acc[c]);
      }
    }
  }
}

void backwardFilter(const ConvShape &g, const float *x, const float *dy, float *dw) {
  std::vector<double> acc(g.filterSize(), 0.0);
  for (int b = 0; b < g.n; b++) {
    for (int oy = 0; oy < g.outH; oy++) {
      for (int ox = 0; ox < g.outW; ox++) {
        const float *dyp = dy + offset4(b, oy, ox, 0, g.outH, g.outW, g.k);
        eachTap(g, oy, ox, [&](int r, int s, int iy, int ix) {
          const float *xp = x + offset4(b, iy, ix, 0, g.h, g.w, g.c);
          for (int k = 0; k < g.k; k++) {
            double *ap = acc.data() + offset4(k, r, s, 0, g.r, g.s, g.c);
            for (int c = 0; c < g.c; c++) ap[c] += double(dyp[k]) * xp[c];
          }
        });
      }
    }
  }
  for (size_t i = 0; i < acc.size(); i++) dw[i] = static_cast<float>(acc[i]);
}

// The emulated search: a "transform" algorithm (1) that is fastest and needs a workspace the size of
// the output, and a "direct" one (0) that needs none, both the reference loops. The search offers at
// most searchWorkspace() and keeps what fits, so the fallback of conv_algos.h runs here as on cuDNN.
ConvChoices &choicesFor(ConvDirection d, const ConvShape &g, Storage storage, MathMode math) {
  const std::string key = convKey(d, g, storage, math);
  if (ConvChoices *known = findChoices(key)) return *known;
  ConvChoices c;
  c.searchWorkspace = searchWorkspace()->bytes();
  const size_t transform = g.outputSize() * elementBytes(storage);
  if (transform <= c.searchWorkspace) c.ranked.push_back(ConvAlgo{1, 0, transform, 1.f});
  c.ranked.push_back(ConvAlgo{0, 0, 0, 2.f});
  return recordChoices(key, std::move(c));
}

// Runs `compute` through the choice of algorithm (its workspace is allocated, not used).
template <class Compute>
void run(const char *name, ConvDirection d, const ConvShape &g, Storage storage, MathMode math, Compute compute) {
  raiseFault();
  if (emulation::kernelFaulted(name)) return;
  runRanked(choicesFor(d, g, storage, math), std::string(name) + " (" + g.describe() + ")", [&](const ConvAlgo &, void *, size_t) { compute(); });
}

}  // namespace

void convForward(const ConvShape &g, const void *x, const void *w, void *y, Storage storage, MathMode math) {
  run("convForward", ConvDirection::Forward, g, storage, math, [&] {
    std::vector<float> out(g.outputSize());
    forward(g, floats(x, g.inputSize(), storage).data(), floats(w, g.filterSize(), storage).data(), out.data());
    store(out, y, storage);
  });
}

void convBackwardData(const ConvShape &g, const void *dy, const void *w, void *dx, Storage storage, MathMode math) {
  run("convBackwardData", ConvDirection::BackwardData, g, storage, math, [&] {
    std::vector<float> out(g.inputSize());
    backwardData(g, floats(dy, g.outputSize(), storage).data(), floats(w, g.filterSize(), storage).data(), out.data());
    store(out, dx, storage);
  });
}

void convBackwardFilter(const ConvShape &g, const void *x, const void *dy, void *dw, Storage storage, MathMode math) {
  run("convBackwardFilter", ConvDirection::BackwardFilter, g, storage, math, [&] {
    std::vector<float> out(g.filterSize());
    backwardFilter(g, floats(x, g.inputSize(), storage).data(), floats(dy, g.outputSize(), storage).data(), out.data());
    store(out, dw, storage);
  });
}

}  // namespace simtrip::cuda
