// BatchMatMul and _FusedMatMul, from tfjs' row-major batched products to dnn.h's column-major
// strided-batched GEMM (cuBLAS on the GPU, a reference loop in the host build).
//
// A row-major r x c matrix is, read column-major, its c x r transpose. So instead of C = op(A) op(B)
// the GEMM computes C^T = op(B)^T op(A)^T, which reads both operands and writes C in place, with
// cuBLAS' "A" being tfjs' b and its "B" being tfjs' a; transposes carry over unchanged. A side whose
// batch is 1 is broadcast with stride 0.
#include <algorithm>
#include <string>

#include "dnn.h"
#include "napi.h"
#include "runtime.h"

namespace simtrip::cuda {

namespace {

// Int32Array layout shared with src/engine/cuda/kernels/matmul.ts.
enum P { BATCH_A, BATCH_B, M, N, K, TRANS_A, TRANS_B, RELU, HAS_BIAS, COUNT };

}  // namespace

// (a, b, bias | 0, biasLength, out, params): out [batch, m, n] = act(op(a) op(b) + bias), bias over n
// (biasLength n, or 1 for one value everywhere), ignored without params[HAS_BIAS].
SIMTRIP_EXPORT(batchMatMul) {
  args.need(6, "batchMatMul");
  const I32View p = args.ints(5, "params", COUNT);
  for (int i = BATCH_A; i <= K; i++) {
    if (p.data[i] < 0) throw ArgError("batchMatMul: params[" + std::to_string(i) + "] is negative");
  }
  const int batchA = p.data[BATCH_A], batchB = p.data[BATCH_B], m = p.data[M], n = p.data[N], k = p.data[K];
  const int batch = std::max(batchA, batchB);
  if ((batchA != batch && batchA != 1) || (batchB != batch && batchB != 1)) {
    throw ArgError("batchMatMul: batches " + std::to_string(batchA) + " and " + std::to_string(batchB) + " do not broadcast");
  }
  const bool transA = p.data[TRANS_A] != 0, transB = p.data[TRANS_B] != 0;
  const float *a = args.ptr<float>(0, "a");
  const float *b = args.ptr<float>(1, "b");
  const bool hasBias = p.data[HAS_BIAS] != 0;
  const float *bias = hasBias ? args.ptr<float>(2, "bias") : nullptr;
  const int biasLength = hasBias ? args.integer(3, "biasLength") : 0;
  float *out = args.ptr<float>(4, "out");
  const size_t rows = size_t(batch) * m;
  if (rows == 0 || n == 0) return undefined(args.env);

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
    gemmStridedBatched(g, b, a, out, mathModes().matmul);
  }
  biasActivation(out, rows, n, bias, biasLength, p.data[RELU] != 0);
  return undefined(args.env);
}

}  // namespace simtrip::cuda
