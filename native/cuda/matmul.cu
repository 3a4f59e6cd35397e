// BatchMatMul and _FusedMatMul, from tfjs' row-major batched products to dnn.h's column-major
// strided-batched GEMM (cuBLAS on the GPU, a reference loop in the host build).
//
// A row-major r x c matrix is, read column-major, its c x r transpose. So instead of C = op(A) op(B)
// the GEMM computes C^T = op(B)^T op(A)^T, which reads both operands and writes C in place, with
// cuBLAS' "A" being tfjs' b and its "B" being tfjs' a; transposes carry over unchanged. A side whose
// batch is 1 is broadcast with stride 0. Under mixed16 both operands may be half-stored: the GEMM then
// reads the halves directly (fp16 tensor cores, float32 accumulation) and still writes float32.
#include <algorithm>
#include <string>

#include "dnn.h"
#include "napi.h"
#include "runtime.h"

namespace simtrip::cuda {

namespace {

// Int32Array layout shared with src/engine/cuda/kernels/matmul.ts.
enum P { BATCH_A, BATCH_B, M, N, K, TRANS_A, TRANS_B, RELU, HAS_BIAS, COUNT };

// out [batch, m, n] = act(op(a) op(b) + bias) with a and b in `inputs` and out in float32.
void batchedProduct(const Args &args, Storage inputs, const char *fn) {
  args.need(6, fn);
  const I32View p = args.ints(5, "params", COUNT);
  for (int i = BATCH_A; i <= K; i++) {
    if (p.data[i] < 0) throw ArgError(std::string(fn) + ": params[" + std::to_string(i) + "] is negative");
  }
  const int batchA = p.data[BATCH_A], batchB = p.data[BATCH_B], m = p.data[M], n = p.data[N], k = p.data[K];
  const int batch = std::max(batchA, batchB);
  if ((batchA != batch && batchA != 1) || (batchB != batch && batchB != 1)) {
    throw ArgError(std::string(fn) + ": batches " + std::to_string(batchA) + " and " + std::to_string(batchB) + " do not broadcast");
  }
  const bool transA = p.data[TRANS_A] != 0, transB = p.data[TRANS_B] != 0;
  const void *a = args.ptr(0, "a");
  const void *b = args.ptr(1, "b");
  const bool hasBias = p.data[HAS_BIAS] != 0;
  const float *bias = hasBias ? args.ptr<float>(2, "bias") : nullptr;
  const int biasLength = hasBias ? args.integer(3, "biasLength") : 0;
  float *out = args.ptr<float>(4, "out");
  const size_t rows = size_t(batch) * m;
  if (rows == 0 || n == 0) return;

  if (k == 0) {
    zero(out, rows * n * sizeof(float));
  } else {
    Gemm g;
    g.transA = transB;
    g.transB = transA;
    g.m = n;
    g.n = m;
    g.k = k;
    g.lda = transB ? k : n;  // b is [k, n], or [n, k] when transposed
    g.ldb = transA ? m : k;  // a is [m, k], or [k, m] when transposed
    g.ldc = n;
    g.strideA = batchB == 1 ? 0 : static_cast<long long>(k) * n;
    g.strideB = batchA == 1 ? 0 : static_cast<long long>(m) * k;
    g.strideC = static_cast<long long>(m) * n;
    g.batch = batch;
    g.inputs = inputs;
    gemmStridedBatched(g, b, a, out, mathModes().matmul);
  }
  biasActivation(out, rows, n, bias, biasLength, p.data[RELU] != 0);
}

}  // namespace

// (a, b, bias | 0, biasLength, out, params): out [batch, m, n] = act(op(a) op(b) + bias), bias over n
// (biasLength n, or 1 for one value everywhere), ignored without params[HAS_BIAS].
SIMTRIP_EXPORT(batchMatMul) {
  batchedProduct(args, Storage::Float, "batchMatMul");
  return undefined(args.env);
}

// The same with a and b IEEE halves (mixed16's half-stored tensors): their exact products summed in
// float32, and out, bias and activation in float32 as above. Linear adds its bias to the float32
// product and rounds after, as the emulation does, so the output is not rounded here.
SIMTRIP_EXPORT(batchMatMulHalves) {
  batchedProduct(args, Storage::Half, "batchMatMulHalves");
  return undefined(args.env);
}

}  // namespace simtrip::cuda
