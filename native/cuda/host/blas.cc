// The host build's GEMM: a reference loop with cublasGemmStridedBatchedEx's contract (dnn.h), so
// matmul.cu's mapping of tfjs' row-major batched products onto column-major GEMMs is tested for real.
// Half inputs are read exactly; their products are exact in double as in float32, and the sum is
// accumulated in double as for float32 inputs.
#include <cstdint>
#include <cstring>

#include "../../shared/half_bits.h"
#include "../dnn.h"
#include "../runtime.h"

namespace simtrip::cuda {

namespace {

inline float valueOf(float v) { return v; }

inline float valueOf(uint16_t h) {
  const uint32_t bits = floatBitsOfHalf(h);
  float v;
  std::memcpy(&v, &bits, sizeof v);
  return v;
}

template <class T>
void gemm(const Gemm &g, const T *a, const T *b, float *c) {
  // Element (row, col) of op(X) for a column-major X with leading dimension ld.
  auto at = [](const T *x, int ld, bool trans, int row, int col) {
    return valueOf(trans ? x[col + size_t(row) * ld] : x[row + size_t(col) * ld]);
  };
  for (int i = 0; i < g.batch; i++) {
    const T *ai = a + i * g.strideA;
    const T *bi = b + i * g.strideB;
    float *ci = c + i * g.strideC;
    for (int col = 0; col < g.n; col++) {
      for (int row = 0; row < g.m; row++) {
        double sum = 0;
        for (int l = 0; l < g.k; l++) sum += double(at(ai, g.lda, g.transA, row, l)) * at(bi, g.ldb, g.transB, l, col);
        float &out = ci[row + size_t(col) * g.ldc];
        out = g.beta == 0.f ? static_cast<float>(g.alpha * sum) : static_cast<float>(g.alpha * sum + double(g.beta) * out);
      }
    }
  }
}

}  // namespace

void gemmStridedBatched(const Gemm &g, const void *a, const void *b, float *c, MathMode) {
  raiseFault();
  if (emulation::kernelFaulted("gemm")) return;
  if (g.inputs == Storage::Half) {
    gemm(g, static_cast<const uint16_t *>(a), static_cast<const uint16_t *>(b), c);
  } else {
    gemm(g, static_cast<const float *>(a), static_cast<const float *>(b), c);
  }
}

}  // namespace simtrip::cuda
