// Convolutions and matrix products in library terms, implemented twice: on cuDNN and cuBLAS by the GPU
// build (gpu/cudnn.cu, gpu/cublas.cu) and by plain reference loops in the host build (host/dnn.cc,
// host/blas.cc), with exactly the same contracts. conv.cu and matmul.cu translate tfjs' layouts and
// attributes into these calls and are compiled into both builds, so the tests exercise them for real.
//
// Every call is queued on the runtime's stream and takes device pointers; none waits for the device
// (except the first call of a convolution shape on the GPU, which times cuDNN's algorithms once).
#pragma once

#include <cstddef>
#include <string>

namespace simtrip::cuda {

// How much float32 precision a call may trade for speed on tensor cores.
enum class MathMode {
  Exact,  // plain fp32 FMA arithmetic: TF32 is forbidden
  Tf32,   // TF32 tensor cores allowed (10-bit mantissa products, fp32 accumulation)
};

// What a call's tensors hold. Half: IEEE halves (engine.precision mixed16's half-stored tensors),
// multiplied on tensor cores with the products accumulated in float32 (cuDNN's "pseudo-half"
// configuration, cuBLAS' CUBLAS_COMPUTE_32F); the MathMode of a half call is ignored, it always
// allows tensor cores, which is all fp16 arithmetic is for.
enum class Storage { Float, Half };
inline size_t elementBytes(Storage s) { return s == Storage::Half ? 2 : 4; }

// The modes the engine runs with, set from JS (setMathMode); both Exact until told otherwise.
struct MathModes {
  MathMode conv = MathMode::Exact;
  MathMode matmul = MathMode::Exact;
};
MathModes &mathModes();

// A 2-D convolution (cross-correlation, as in tfjs and PyTorch) of x [n, h, w, c] (NHWC) with a
// filter [k, r, s, c] (KRSC, i.e. OHWI) into y [n, outH, outW, k], with symmetric zero padding.
// outH must be (h + 2 padH - dilationH (r - 1) - 1) / strideH + 1 (floor division), likewise outW.
struct ConvShape {
  int n, h, w, c;
  int k, r, s;
  int padH, padW;
  int strideH, strideW;
  int dilationH, dilationW;
  int outH, outW;

  size_t inputSize() const { return size_t(n) * h * w * c; }
  size_t outputSize() const { return size_t(n) * outH * outW * k; }
  size_t filterSize() const { return size_t(k) * r * s * c; }
  // "n=2 16x16x8 -> 8x8x16, 3x3 stride 2 pad 1 dilation 1": for error messages.
  std::string describe() const;
};

// Every tensor of a convolution call (inputs and output) holds `storage`. With halves, the sums are
// float32 and the output is their float32 value rounded to the nearest half (ties to even) once.
//
// y = conv(x, w). y is overwritten.
void convForward(const ConvShape &shape, const void *x, const void *w, void *y, Storage storage, MathMode math);
// dx = the gradient of sum(conv(x, w) * dy) with respect to x. dx is overwritten.
void convBackwardData(const ConvShape &shape, const void *dy, const void *w, void *dx, Storage storage, MathMode math);
// dw [k, r, s, c] = the gradient of sum(conv(x, w) * dy) with respect to w. dw is overwritten.
void convBackwardFilter(const ConvShape &shape, const void *x, const void *dy, void *dw, Storage storage, MathMode math);

// cuBLAS' strided-batched GEMM, column-major, with its exact contract: for each i < batch,
//   C_i = alpha op(A_i) op(B_i) + beta C_i,   X_i = X + i strideX,
// op(A) is m x k (A is lda-strided, m x k when !transA, k x m when transA), op(B) is k x n, C is m x n
// with leading dimension ldc. A stride of 0 reuses one matrix for the whole batch. With beta == 0, C is
// not read (NaN in C does not propagate); with k == 0, C = beta C. A and B hold `inputs` (strides and
// leading dimensions count elements); C is always float32, the float32 sum itself.
struct Gemm {
  bool transA = false, transB = false;
  int m = 0, n = 0, k = 0;
  int lda = 0, ldb = 0, ldc = 0;
  long long strideA = 0, strideB = 0, strideC = 0;
  int batch = 1;
  float alpha = 1.f, beta = 0.f;
  Storage inputs = Storage::Float;
};
void gemmStridedBatched(const Gemm &g, const void *a, const void *b, float *c, MathMode math);

// Shared epilogue (conv.cu): y [rows, channels] += bias (biasLength == channels, or 1 to add the same
// value everywhere, or 0 for none), then relu where asked (NaN stays NaN, as in tfjs).
void biasActivation(float *y, size_t rows, int channels, const float *bias, int biasLength, bool relu);

}  // namespace simtrip::cuda
