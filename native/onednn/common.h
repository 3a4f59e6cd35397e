// Shared plumbing for the simtrip oneDNN addon: one engine/stream, N-API argument helpers.
#pragma once

#include <node_api.h>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "oneapi/dnnl/dnnl.hpp"

namespace simtrip {

dnnl::engine &cpuEngine();
dnnl::stream &cpuStream();

// Thrown by argument helpers; the N-API wrapper turns it into a JS TypeError.
struct ArgError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct F32View {
  float *data = nullptr;
  size_t length = 0;
};

struct I32View {
  const int32_t *data = nullptr;
  size_t length = 0;
};

F32View f32Arg(napi_env env, napi_value v, const char *what, size_t expectLength);
// A Float32Array of any length (the first operand of a kernel sets the sizes the others are checked against).
F32View anyF32Arg(napi_env env, napi_value v, const char *what);
// Null/undefined give an empty view (used for optional bias).
F32View optionalF32Arg(napi_env env, napi_value v, const char *what, size_t expectLength);
I32View i32Arg(napi_env env, napi_value v, const char *what, size_t expectLength);
double numberArg(napi_env env, napi_value v, const char *what);
int32_t intArg(napi_env env, napi_value v, const char *what);

// Every kernel entry point: fills outputs in place, returns undefined.
using KernelFn = void (*)(napi_env env, napi_value *args, size_t argc);

void convForward(napi_env env, napi_value *args, size_t argc);
void convBackwardData(napi_env env, napi_value *args, size_t argc);
void convBackwardWeights(napi_env env, napi_value *args, size_t argc);
void matmul(napi_env env, napi_value *args, size_t argc);
void maxPool(napi_env env, napi_value *args, size_t argc);
void maxPoolGrad(napi_env env, napi_value *args, size_t argc);
void batchNormForward(napi_env env, napi_value *args, size_t argc);
void batchNormBackward(napi_env env, napi_value *args, size_t argc);
void groupNormForward(napi_env env, napi_value *args, size_t argc);
void groupNormBackward(napi_env env, napi_value *args, size_t argc);
void eltwiseUnary(napi_env env, napi_value *args, size_t argc);
void eltwiseBinary(napi_env env, napi_value *args, size_t argc);
void reduceMid(napi_env env, napi_value *args, size_t argc);
void roundToHalf(napi_env env, napi_value *args, size_t argc);
void sgdUpdate(napi_env env, napi_value *args, size_t argc);

std::string convImplInfo(napi_env env, napi_value *args, size_t argc);

}  // namespace simtrip
