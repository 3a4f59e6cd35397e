// dnn.h's GEMM on cuBLAS (fp32, TF32, or fp16 inputs with fp32 accumulation and output): one handle on
// the runtime's stream, with a workspace of its own that lives as long as the process (cuBLAS would
// otherwise allocate one per stream behind the pool's back).
#include <algorithm>
#include <string>

#include "../dnn.h"
#include "../runtime.h"
#include "dynload.h"

namespace simtrip::cuda {

namespace {

// cuBLAS' recommendation for Hopper (Ampere wants less); split-K GEMMs use it.
constexpr size_t kWorkspaceBytes = size_t(32) << 20;
// gridDim.z bounds the batch some of cuBLAS' kernels take in one launch.
constexpr int kMaxBatch = 65535;

void check(cublasStatus_t status, const char *call, const std::string &what) {
  if (status != CUBLAS_STATUS_SUCCESS) throw DeviceError(std::string(call) + " (" + what + "): " + lib::cublas.cublasGetStatusString(status));
}

cublasHandle_t createHandle() {
  if (!lib::cublas.cublasCreate_v2) throw DeviceError("cuBLAS is not loaded (init() first)");
  cublasHandle_t h = nullptr;
  check(lib::cublas.cublasCreate_v2(&h), "cublasCreate", "first GEMM");
  // Setting the stream resets the workspace, so the workspace comes second.
  check(lib::cublas.cublasSetStream_v2(h, stream()), "cublasSetStream", "first GEMM");
  check(lib::cublas.cublasSetWorkspace_v2(h, alloc(kWorkspaceBytes), kWorkspaceBytes), "cublasSetWorkspace", "first GEMM");
  return h;
}

cublasHandle_t handle() {
  static const cublasHandle_t h = createHandle();
  return h;
}

cublasOperation_t op(bool transpose) { return transpose ? CUBLAS_OP_T : CUBLAS_OP_N; }

std::string describe(const Gemm &g) {
  return std::string(g.inputs == Storage::Half ? "fp16 " : "") + (g.transA ? "T" : "N") + (g.transB ? "T" : "N") + " m=" + std::to_string(g.m) + " n=" + std::to_string(g.n) +
         " k=" + std::to_string(g.k) + " batch=" + std::to_string(g.batch);
}

}  // namespace

void gemmStridedBatched(const Gemm &g, const void *a, const void *b, float *c, MathMode math) {
  if (g.m == 0 || g.n == 0 || g.batch == 0) return;
  // Halves: fp16 products on tensor cores, summed in fp32 (CUBLAS_COMPUTE_32F with 16-bit inputs
  // allows tensor cores; only the _PEDANTIC type would forbid them), written as fp32.
  const bool half = g.inputs == Storage::Half;
  const cudaDataType inputType = half ? CUDA_R_16F : CUDA_R_32F;
  const cublasComputeType_t compute = !half && math == MathMode::Tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  const size_t bytes = elementBytes(g.inputs);
  const char *a0 = static_cast<const char *>(a);
  const char *b0 = static_cast<const char *>(b);
  for (int first = 0; first < g.batch; first += kMaxBatch) {
    const int count = std::min(kMaxBatch, g.batch - first);
    check(lib::cublas.cublasGemmStridedBatchedEx(handle(), op(g.transA), op(g.transB), g.m, g.n, g.k, &g.alpha, a0 + first * g.strideA * bytes,
                                                 inputType, g.lda, g.strideA, b0 + first * g.strideB * bytes, inputType, g.ldb, g.strideB,
                                                 &g.beta, c + first * g.strideC, CUDA_R_32F, g.ldc, g.strideC, count, compute,
                                                 CUBLAS_GEMM_DEFAULT),
          "cublasGemmStridedBatchedEx", describe(g));
  }
}

}  // namespace simtrip::cuda
