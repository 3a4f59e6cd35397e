// Conv2D, FusedConv2D and both convolution gradients, from tfjs' layouts to dnn.h's calls (cuDNN on
// the GPU, reference loops in the host build). Each runs on float32 tensors or, under mixed16, on
// half-stored ones (the *Halves exports: halves in, halves out, float32 accumulation); the layout work
// below (filter reorder, explicit padding) is the same on 2-byte elements.
//
// tfjs keeps activations in NHWC, which cuDNN reads directly, and filters in HWIO, which cuDNN's NHWC
// kernels do not take: the exports take filters already in KRSC (OHWI), which the backend makes once
// per weight version (CudaBackend.krscFilter: the same weight feeds the forward pass of every view and
// every backward-data pass), and the filter gradient comes back to HWIO with the tiled transpose.
//
// cuDNN's descriptors count elements in int: a tensor of 2^31 elements or more (an activation of a
// large batch at 224 px) is convolved a slice of the batch at a time, the filter gradients of the
// slices summed.
//
// cuDNN pads symmetrically. tfjs' 'same' padding at stride 2 on an even input puts the extra row at the
// bottom (top 0, bottom 1), which no symmetric padding reproduces: there the input is zero-padded
// explicitly into scratch and the library runs unpadded along that dimension (backward data computes
// the padded gradient and slices it; backward filter reads the padded input).
#include <algorithm>
#include <cstdint>
#include <string>
#include <type_traits>

#include "dnn.h"
#include "kernels/nhwc.cuh"
#include "kernels/transpose.h"
#include "launch.h"
#include "napi.h"

namespace simtrip::cuda {

MathModes &mathModes() {
  static MathModes modes;
  return modes;
}

std::string ConvShape::describe() const {
  return "n=" + std::to_string(n) + " " + std::to_string(h) + "x" + std::to_string(w) + "x" + std::to_string(c) + " -> " +
         std::to_string(outH) + "x" + std::to_string(outW) + "x" + std::to_string(k) + ", " + std::to_string(r) + "x" +
         std::to_string(s) + " stride " + std::to_string(strideH) + "," + std::to_string(strideW) + " pad " + std::to_string(padH) +
         "," + std::to_string(padW) + " dilation " + std::to_string(dilationH) + "," + std::to_string(dilationW);
}

namespace {

// Int32Array layout shared with src/engine/conv_params.ts (and native/onednn/conv.cc).
enum P { N, IH, IW, IC, OH, OW, OC, KH, KW, SH, SW, DH, DW, PT, PL, PB, PR, RELU, HAS_BIAS, COUNT };

// A convolution as tfjs states it, and as the library runs it.
struct ConvGeometry {
  ConvShape lib;     // symmetric padding only, on the explicitly padded input where that is needed
  int h = 0, w = 0;  // the caller's input size
  int top = 0, bottom = 0, left = 0, right = 0;  // explicit padding (0 along a symmetric dimension)
  bool relu = false, bias = false;

  bool padsExplicitly() const { return top || bottom || left || right; }
  int filterRows() const { return lib.r * lib.s * lib.c; }  // HWIO as a matrix: (R S C) x K
};

int outputSize(int in, int pad, int k, int stride, int dilation) { return (in + 2 * pad - dilation * (k - 1) - 1) / stride + 1; }

ConvGeometry geometry(const I32View &p, const char *fn) {
  for (int i = N; i <= PR; i++) {
    const bool positive = i < PT;
    if (positive ? p.data[i] <= 0 : p.data[i] < 0) throw ArgError(std::string(fn) + ": params[" + std::to_string(i) + "] out of range");
  }
  ConvGeometry g;
  g.h = p.data[IH];
  g.w = p.data[IW];
  const bool symmetricH = p.data[PT] == p.data[PB];
  const bool symmetricW = p.data[PL] == p.data[PR];
  if (!symmetricH) g.top = p.data[PT], g.bottom = p.data[PB];
  if (!symmetricW) g.left = p.data[PL], g.right = p.data[PR];
  ConvShape &s = g.lib;
  s.n = p.data[N];
  s.h = g.h + g.top + g.bottom;
  s.w = g.w + g.left + g.right;
  s.c = p.data[IC];
  s.k = p.data[OC];
  s.r = p.data[KH];
  s.s = p.data[KW];
  s.padH = symmetricH ? p.data[PT] : 0;
  s.padW = symmetricW ? p.data[PL] : 0;
  s.strideH = p.data[SH];
  s.strideW = p.data[SW];
  s.dilationH = p.data[DH];
  s.dilationW = p.data[DW];
  s.outH = p.data[OH];
  s.outW = p.data[OW];
  g.relu = p.data[RELU] != 0;
  g.bias = p.data[HAS_BIAS] != 0;
  // The library derives the output size from the rest; a disagreement would read or write out of bounds.
  if (outputSize(s.h, s.padH, s.r, s.strideH, s.dilationH) != s.outH || outputSize(s.w, s.padW, s.s, s.strideW, s.dilationW) != s.outW) {
    throw ArgError(std::string(fn) + ": the output size does not follow from the padding (" + s.describe() + ")");
  }
  return g;
}

// T: uint32_t for float32, uint16_t for halves (a zero is all zero bits in both).
template <class T, class Index>
__global__ void padKernel(const T *__restrict__ x, T *__restrict__ out, int h, int w, int c, int top, int left, int outH, int outW, Index total) {
  for (Index i = Index(gridFirst()); i < total; i += Index(gridStride())) {
    const NhwcPos<Index> o = nhwcPos(i, outH, outW, c);
    const int y = o.y - top, xx = o.x - left;
    out[i] = y >= 0 && y < h && xx >= 0 && xx < w ? x[nhwcOffset(o.b, y, xx, o.c, h, w, c)] : T(0);
  }
}

// out [n, h + top + bottom, w + left + right, c] = x zero-padded.
void padInput(const ConvGeometry &g, const void *x, void *out, Storage storage) {
  const size_t total = g.lib.inputSize();
  const auto run = [&](auto *type) {
    using T = std::remove_pointer_t<decltype(type)>;
    withIndexType(total, [&](auto index) {
      using Index = decltype(index);
      launchOver("convPadInput", padKernel<T, Index>, total, 256, static_cast<const T *>(x), static_cast<T *>(out), g.h, g.w,
             g.lib.c, g.top, g.left, g.lib.h, g.lib.w, Index(total));
    });
  };
  if (storage == Storage::Half) {
    run(static_cast<uint16_t *>(nullptr));
  } else {
    run(static_cast<uint32_t *>(nullptr));
  }
}

// dx = the caller's window of the padded gradient.
void unpadGradient(const ConvGeometry &g, const void *padded, void *dx, Storage storage) {
  const int c = g.lib.c;
  Strided view{};
  view.rank = 3;
  view.shape[0] = g.lib.n;
  view.shape[1] = g.h;
  view.shape[2] = g.w * c;  // a row's pixels and channels stay contiguous
  view.strides[0] = static_cast<long long>(g.lib.h) * g.lib.w * c;
  view.strides[1] = static_cast<long long>(g.lib.w) * c;
  view.strides[2] = 1;
  const size_t first = (static_cast<size_t>(g.top) * g.lib.w + g.left) * c;
  stridedCopy(static_cast<const char *>(padded) + first * elementBytes(storage), dx, view, elementBytes(storage));
}

// Samples per library call: all of them, unless the input or output would reach the elements the
// library's int descriptors can count (device().maxLibraryElements; tests lower it).
int samplesPerCall(const ConvShape &s, const char *fn) {
  const size_t perSample = std::max(s.inputSize(), s.outputSize()) / static_cast<size_t>(s.n);
  const size_t limit = device().maxLibraryElements;
  if (perSample > limit) throw ArgError(std::string(fn) + ": one sample of " + s.describe() + " has more elements than cuDNN can count");
  return static_cast<int>(std::min<size_t>(static_cast<size_t>(s.n), limit / perSample));
}

// f(slice, first sample) over slices of the batch that the library can take in one call.
template <class F>
void eachBatchSlice(const ConvShape &s, const char *fn, F f) {
  const int per = samplesPerCall(s, fn);
  for (int first = 0; first < s.n; first += per) {
    ConvShape slice = s;
    slice.n = std::min(per, s.n - first);
    f(slice, static_cast<size_t>(first));
  }
}

const void *offset(const void *p, size_t elements, Storage storage) { return static_cast<const char *>(p) + elements * elementBytes(storage); }
void *offset(void *p, size_t elements, Storage storage) { return static_cast<char *>(p) + elements * elementBytes(storage); }

__global__ void accumulateKernel(float *__restrict__ sum, const float *__restrict__ part, size_t n) {
  for (size_t i = gridFirst(); i < n; i += gridStride()) sum[i] += part[i];
}

// y = conv(x, w) on the library's shape, a batch slice at a time.
void forwardSliced(const ConvShape &s, const void *x, const void *krsc, void *y, Storage storage) {
  const size_t in = size_t(s.h) * s.w * s.c, out = size_t(s.outH) * s.outW * s.k;
  eachBatchSlice(s, "convForward", [&](const ConvShape &slice, size_t first) {
    convForward(slice, offset(x, first * in, storage), krsc, offset(y, first * out, storage), storage, mathModes().conv);
  });
}

void backwardDataSliced(const ConvShape &s, const void *dy, const void *krsc, void *dx, Storage storage) {
  const size_t in = size_t(s.h) * s.w * s.c, out = size_t(s.outH) * s.outW * s.k;
  eachBatchSlice(s, "convBackwardData", [&](const ConvShape &slice, size_t first) {
    convBackwardData(slice, offset(dy, first * out, storage), krsc, offset(dx, first * in, storage), storage, mathModes().conv);
  });
}

// dw (KRSC) = the sum over the slices' filter gradients: float32 only, since halves would round once
// per slice instead of once.
void backwardFilterSliced(const ConvShape &s, const void *x, const void *dy, void *dw, Storage storage) {
  if (samplesPerCall(s, "convBackwardFilter") >= s.n) return convBackwardFilter(s, x, dy, dw, storage, mathModes().conv);
  if (storage == Storage::Half) throw ArgError("convBackwardFilterHalves: " + s.describe() + " has more elements than cuDNN can count; lower the batch size");
  const size_t in = size_t(s.h) * s.w * s.c, out = size_t(s.outH) * s.outW * s.k;
  Scratch part(s.filterSize() * sizeof(float));
  eachBatchSlice(s, "convBackwardFilter", [&](const ConvShape &slice, size_t first) {
    const void *xs = offset(x, first * in, storage), *dys = offset(dy, first * out, storage);
    if (first == 0) return convBackwardFilter(slice, xs, dys, dw, storage, mathModes().conv);
    convBackwardFilter(slice, xs, dys, part.as<void>(), storage, mathModes().conv);
    launchOver("convAccumulateFilterGrad", accumulateKernel, s.filterSize(), 256, static_cast<float *>(dw), part.as<const float>(), s.filterSize());
  });
}

// The three directions on the caller's tensors (all in `storage`), around the explicit padding. The
// filter is in KRSC.
void forward(const ConvGeometry &g, const void *x, const void *krsc, void *y, Storage storage) {
  if (g.padsExplicitly()) {
    Scratch padded(g.lib.inputSize() * elementBytes(storage));
    padInput(g, x, padded.as<void>(), storage);
    forwardSliced(g.lib, padded.as<void>(), krsc, y, storage);
  } else {
    forwardSliced(g.lib, x, krsc, y, storage);
  }
}

void backwardData(const ConvGeometry &g, const void *dy, const void *krsc, void *dx, Storage storage) {
  if (g.padsExplicitly()) {
    Scratch padded(g.lib.inputSize() * elementBytes(storage));
    backwardDataSliced(g.lib, dy, krsc, padded.as<void>(), storage);
    unpadGradient(g, padded.as<void>(), dx, storage);
  } else {
    backwardDataSliced(g.lib, dy, krsc, dx, storage);
  }
}

// dw in tfjs' HWIO.
void backwardFilter(const ConvGeometry &g, const void *x, const void *dy, void *dw, Storage storage) {
  Scratch krsc(g.lib.filterSize() * elementBytes(storage));
  if (g.padsExplicitly()) {
    Scratch padded(g.lib.inputSize() * elementBytes(storage));
    padInput(g, x, padded.as<void>(), storage);
    backwardFilterSliced(g.lib, padded.as<void>(), dy, krsc.as<void>(), storage);
  } else {
    backwardFilterSliced(g.lib, x, dy, krsc.as<void>(), storage);
  }
  transpose2d(krsc.as<void>(), dw, 1, g.lib.k, g.filterRows(), elementBytes(storage));
}

// The half exports run convolutions alone: FusedConv2D's epilogue is float32 only.
ConvGeometry halfGeometry(const Args &args, size_t paramsArg, const char *fn) {
  const ConvGeometry g = geometry(args.ints(paramsArg, "params", COUNT), fn);
  if (g.relu || g.bias) throw ArgError(std::string(fn) + ": no bias or activation on halves");
  return g;
}

__global__ void biasActivationKernel(float *__restrict__ y, size_t total, int channels, const float *__restrict__ bias, int biasLength,
                                     bool relu) {
  const size_t first = gridFirst(), stride = gridStride();
  // The channel follows the index without a 64-bit modulo per element.
  int c = static_cast<int>(first % channels);
  const int step = static_cast<int>(stride % channels);
  for (size_t i = first; i < total; i += stride) {
    float v = y[i];
    if (biasLength) v += bias[biasLength == 1 ? 0 : c];
    // tfjs' relu is Math.max(0, v): NaN stays NaN, -0 becomes 0.
    if (relu && v <= 0.f) v = 0.f;
    y[i] = v;
    c += step;
    if (c >= channels) c -= channels;
  }
}

}  // namespace

void biasActivation(float *y, size_t rows, int channels, const float *bias, int biasLength, bool relu) {
  const size_t total = rows * static_cast<size_t>(channels);
  if (total == 0 || (!biasLength && !relu)) return;
  if (biasLength != 0 && biasLength != 1 && biasLength != channels) throw ArgError("bias: length is neither 1 nor the channel count");
  launchOver("biasActivation", biasActivationKernel, total, 256, y, total, channels, bias, biasLength, relu);
}

// (convTf32, matmulTf32): whether convolutions / matrix products may use TF32 tensor cores.
SIMTRIP_EXPORT(setMathMode) {
  args.need(2, "setMathMode");
  mathModes().conv = args.flag(0, "convTf32") ? MathMode::Tf32 : MathMode::Exact;
  mathModes().matmul = args.flag(1, "matmulTf32") ? MathMode::Tf32 : MathMode::Exact;
  return undefined(args.env);
}

// Every filter argument below is in KRSC (CudaBackend.krscFilter), not tfjs' HWIO.
// (x, filter, bias | 0, biasLength, out, params): out = act(conv(x, filter) + bias); biasLength is
// the output channel count or 1 (one value for all), ignored without params[HAS_BIAS].
SIMTRIP_EXPORT(convForward) {
  args.need(6, "convForward");
  const ConvGeometry g = geometry(args.ints(5, "params", COUNT), "convForward");
  const float *bias = g.bias ? args.ptr<float>(2, "bias") : nullptr;
  const int biasLength = g.bias ? args.integer(3, "biasLength") : 0;
  float *y = args.ptr<float>(4, "out");
  forward(g, args.ptr<float>(0, "x"), args.ptr<float>(1, "filter"), y, Storage::Float);
  biasActivation(y, size_t(g.lib.n) * g.lib.outH * g.lib.outW, g.lib.k, bias, biasLength, g.relu);
  return undefined(args.env);
}

// (dy, filter, dxOut, params)
SIMTRIP_EXPORT(convBackwardData) {
  args.need(4, "convBackwardData");
  const ConvGeometry g = geometry(args.ints(3, "params", COUNT), "convBackwardData");
  backwardData(g, args.ptr<float>(0, "dy"), args.ptr<float>(1, "filter"), args.ptr<float>(2, "out"), Storage::Float);
  return undefined(args.env);
}

// (x, dy, dwOut, params): dw in tfjs' HWIO.
SIMTRIP_EXPORT(convBackwardFilter) {
  args.need(4, "convBackwardFilter");
  const ConvGeometry g = geometry(args.ints(3, "params", COUNT), "convBackwardFilter");
  backwardFilter(g, args.ptr<float>(0, "x"), args.ptr<float>(1, "dy"), args.ptr<float>(2, "out"), Storage::Float);
  return undefined(args.env);
}

// The same three on IEEE halves (mixed16's half-stored tensors), output halves included: float32 sums
// of the exact half products, each rounded once to the nearest half (see dnn.h).
// (x, filter, out, params)
SIMTRIP_EXPORT(convForwardHalves) {
  args.need(4, "convForwardHalves");
  const ConvGeometry g = halfGeometry(args, 3, "convForwardHalves");
  forward(g, args.ptr<uint16_t>(0, "x"), args.ptr<uint16_t>(1, "filter"), args.ptr<uint16_t>(2, "out"), Storage::Half);
  return undefined(args.env);
}

// (dy, filter, dxOut, params)
SIMTRIP_EXPORT(convBackwardDataHalves) {
  args.need(4, "convBackwardDataHalves");
  const ConvGeometry g = halfGeometry(args, 3, "convBackwardDataHalves");
  backwardData(g, args.ptr<uint16_t>(0, "dy"), args.ptr<uint16_t>(1, "filter"), args.ptr<uint16_t>(2, "out"), Storage::Half);
  return undefined(args.env);
}

// (x, dy, dwOut, params): dw in tfjs' HWIO.
SIMTRIP_EXPORT(convBackwardFilterHalves) {
  args.need(4, "convBackwardFilterHalves");
  const ConvGeometry g = halfGeometry(args, 3, "convBackwardFilterHalves");
  backwardFilter(g, args.ptr<uint16_t>(0, "x"), args.ptr<uint16_t>(1, "dy"), args.ptr<uint16_t>(2, "out"), Storage::Half);
  return undefined(args.env);
}

}  // namespace simtrip::cuda
