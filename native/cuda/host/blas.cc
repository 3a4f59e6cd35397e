// The host build's GEMM: a reference loop with cublasGemmStridedBatchedEx's contract (dnn.h), so
// matmul.cu's mapping of tfjs' row-major batched products onto column-major GEMMs is tested for real.
#include "../dnn.h"

namespace simtrip::cuda {

void gemmStridedBatched(const Gemm &g, const float *a, const float *b, float *c, MathMode) {
  // Element (row, col) of op(X) for a column-major X with leading dimension ld.
  auto at = [](const float *x, int ld, bool trans, int row, int col) { return trans ? x[col + size_t(row) * ld] : x[row + size_t(col) * ld]; };
  for (int i = 0; i < g.batch; i++) {
    const float *ai = a + i * g.strideA;
    const float *bi = b + i * g.strideB;
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

}  // namespace simtrip::cuda
