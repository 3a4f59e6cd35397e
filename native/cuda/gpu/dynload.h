// cuDNN and cuBLAS entry points, resolved with dlsym by gpu/libraries.cc. Each list names a function
// once; its type comes from the real header where the build machine has it (so every call is checked
// against cuDNN 9 / cuBLAS as installed), else from api/*_decls.h.
#pragma once

#include <cuda_runtime.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

#if __has_include(<cudnn.h>)
#include <cudnn.h>
#define SIMTRIP_REAL_CUDNN 1
#else
#include "api/cudnn_decls.h"
#endif

#if __has_include(<cublas_v2.h>)
#include <cublas_v2.h>
#define SIMTRIP_REAL_CUBLAS 1
#else
#include "api/cublas_decls.h"
#endif

#define SIMTRIP_CUDNN_FUNCTIONS(X)                   \
  X(cudnnGetVersion)                                 \
  X(cudnnGetErrorString)                             \
  X(cudnnCreate)                                     \
  X(cudnnDestroy)                                    \
  X(cudnnSetStream)                                  \
  X(cudnnCreateTensorDescriptor)                     \
  X(cudnnSetTensor4dDescriptor)                      \
  X(cudnnDestroyTensorDescriptor)                    \
  X(cudnnCreateFilterDescriptor)                     \
  X(cudnnSetFilter4dDescriptor)                      \
  X(cudnnDestroyFilterDescriptor)                    \
  X(cudnnCreateConvolutionDescriptor)                \
  X(cudnnDestroyConvolutionDescriptor)               \
  X(cudnnSetConvolutionMathType)                     \
  X(cudnnSetConvolution2dDescriptor)                 \
  X(cudnnGetConvolutionForwardAlgorithmMaxCount)     \
  X(cudnnGetConvolutionBackwardDataAlgorithmMaxCount) \
  X(cudnnGetConvolutionBackwardFilterAlgorithmMaxCount) \
  X(cudnnFindConvolutionForwardAlgorithmEx)          \
  X(cudnnFindConvolutionBackwardDataAlgorithmEx)     \
  X(cudnnFindConvolutionBackwardFilterAlgorithmEx)   \
  X(cudnnConvolutionForward)                         \
  X(cudnnConvolutionBackwardData)                    \
  X(cudnnConvolutionBackwardFilter)

#define SIMTRIP_CUBLAS_FUNCTIONS(X) \
  X(cublasCreate_v2)                \
  X(cublasDestroy_v2)               \
  X(cublasGetProperty)              \
  X(cublasSetStream_v2)             \
  X(cublasSetWorkspace_v2)          \
  X(cublasGetStatusString)

namespace simtrip::cuda::lib {

// cublas_v2.h overloads cublasGemmStridedBatchedEx for C++ (a legacy cudaDataType compute type), so
// its type is spelled out; the static_assert in libraries.cc picks the C entry point against it.
using GemmStridedBatchedEx = cublasStatus_t (*)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int, const void *,
                                                const void *, cudaDataType, int, long long int, const void *, cudaDataType, int,
                                                long long int, const void *, void *, cudaDataType, int, long long int, int,
                                                cublasComputeType_t, cublasGemmAlgo_t);

struct Cudnn {
#define SIMTRIP_DECLARE(f) decltype(&::f) f = nullptr;
  SIMTRIP_CUDNN_FUNCTIONS(SIMTRIP_DECLARE)
};

struct Cublas {
  SIMTRIP_CUBLAS_FUNCTIONS(SIMTRIP_DECLARE)
#undef SIMTRIP_DECLARE
  GemmStridedBatchedEx cublasGemmStridedBatchedEx = nullptr;
};

// Filled by loadLibraries(); every pointer is set once it returns.
extern Cudnn cudnn;
extern Cublas cublas;

}  // namespace simtrip::cuda::lib

#pragma GCC diagnostic pop
