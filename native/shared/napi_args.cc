#include "napi_args.h"

namespace simtrip {

static void typedArrayInfo(napi_env env, napi_value v, const char *what, napi_typedarray_type *type, size_t *length,
                           void **data) {
  bool isTyped = false;
  napi_is_typedarray(env, v, &isTyped);
  if (!isTyped) throw ArgError(std::string(what) + ": expected a typed array");
  napi_value buffer;
  size_t offset;
  napi_get_typedarray_info(env, v, type, length, data, &buffer, &offset);
}

static void expectTypedArray(napi_env env, napi_value v, const char *what, napi_typedarray_type want, void **data,
                             size_t *length) {
  napi_typedarray_type type;
  typedArrayInfo(env, v, what, &type, length, data);
  if (type != want) throw ArgError(std::string(what) + ": wrong typed array element type");
}

F32View f32Arg(napi_env env, napi_value v, const char *what, size_t expectLength) {
  F32View view = anyF32Arg(env, v, what);
  if (view.length != expectLength) {
    throw ArgError(std::string(what) + ": expected " + std::to_string(expectLength) + " elements, got " +
                   std::to_string(view.length));
  }
  return view;
}

F32View anyF32Arg(napi_env env, napi_value v, const char *what) {
  F32View view;
  void *data = nullptr;
  expectTypedArray(env, v, what, napi_float32_array, &data, &view.length);
  view.data = static_cast<float *>(data);
  return view;
}

F32View optionalF32Arg(napi_env env, napi_value v, const char *what, size_t expectLength) {
  if (isNullish(env, v)) return F32View{};
  return f32Arg(env, v, what, expectLength);
}

I32View anyI32Arg(napi_env env, napi_value v, const char *what) {
  I32View view;
  void *data = nullptr;
  expectTypedArray(env, v, what, napi_int32_array, &data, &view.length);
  view.data = static_cast<const int32_t *>(data);
  return view;
}

I32View i32Arg(napi_env env, napi_value v, const char *what, size_t expectLength) {
  I32View view = anyI32Arg(env, v, what);
  if (view.length != expectLength) {
    throw ArgError(std::string(what) + ": expected " + std::to_string(expectLength) + " parameters");
  }
  return view;
}

static size_t elementBytes(napi_typedarray_type type) {
  switch (type) {
    case napi_int8_array:
    case napi_uint8_array:
    case napi_uint8_clamped_array:
      return 1;
    case napi_int16_array:
    case napi_uint16_array:
      return 2;
    case napi_int32_array:
    case napi_uint32_array:
    case napi_float32_array:
      return 4;
    default:
      return 8;
  }
}

BytesView bytesArg(napi_env env, napi_value v, const char *what) {
  BytesView view;
  napi_typedarray_type type;
  size_t length = 0;
  typedArrayInfo(env, v, what, &type, &length, &view.data);
  view.bytes = length * elementBytes(type);
  return view;
}

double numberArg(napi_env env, napi_value v, const char *what) {
  double out = 0;
  if (napi_get_value_double(env, v, &out) != napi_ok) throw ArgError(std::string(what) + ": expected a number");
  return out;
}

int32_t intArg(napi_env env, napi_value v, const char *what) {
  int32_t out = 0;
  if (napi_get_value_int32(env, v, &out) != napi_ok) throw ArgError(std::string(what) + ": expected an integer");
  return out;
}

bool isNullish(napi_env env, napi_value v) {
  napi_valuetype t;
  napi_typeof(env, v, &t);
  return t == napi_null || t == napi_undefined;
}

void throwAsJs(napi_env env, const std::exception &e, const char *prefix) {
  const std::string message = std::string(prefix) + e.what();
  if (dynamic_cast<const ArgError *>(&e)) {
    napi_throw_type_error(env, nullptr, message.c_str());
  } else {
    napi_throw_error(env, nullptr, message.c_str());
  }
}

}  // namespace simtrip
