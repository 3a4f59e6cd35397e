// N-API argument helpers shared by the native engines (native/onednn/, native/cuda/): typed-array
// views with length checks and numbers, each failure an ArgError that names the argument.
#pragma once

#include <node_api.h>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace simtrip {

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

struct BytesView {
  void *data = nullptr;
  size_t bytes = 0;
};

F32View f32Arg(napi_env env, napi_value v, const char *what, size_t expectLength);
// A Float32Array of any length (the first operand of a kernel sets the sizes the others are checked against).
F32View anyF32Arg(napi_env env, napi_value v, const char *what);
// Null/undefined give an empty view (used for optional bias).
F32View optionalF32Arg(napi_env env, napi_value v, const char *what, size_t expectLength);
I32View i32Arg(napi_env env, napi_value v, const char *what, size_t expectLength);
// An Int32Array of any length.
I32View anyI32Arg(napi_env env, napi_value v, const char *what);
// The bytes of any typed array (uploads and downloads of every dtype).
BytesView bytesArg(napi_env env, napi_value v, const char *what);
double numberArg(napi_env env, napi_value v, const char *what);
int32_t intArg(napi_env env, napi_value v, const char *what);
bool isNullish(napi_env env, napi_value v);

// Throws the pending C++ exception as a JS error: ArgError as TypeError, anything else as Error.
void throwAsJs(napi_env env, const std::exception &e, const char *prefix = "");

}  // namespace simtrip
