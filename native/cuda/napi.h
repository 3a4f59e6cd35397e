// The CUDA addon's N-API surface. Each source file exports its own functions with SIMTRIP_EXPORT, so
// adding a kernel family never touches a central list. Device pointers cross into JS as numbers
// (doubles hold every x86-64 address exactly); 0 is null.
#pragma once

#include <node_api.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "../shared/napi_args.h"

namespace simtrip::cuda {

struct Args {
  napi_env env;
  napi_value *values;
  size_t count;

  // Throws an ArgError unless at least n arguments were passed.
  void need(size_t n, const char *function) const;
  napi_value operator[](size_t i) const { return values[i]; }

  void *ptr(size_t i, const char *what) const;
  template <class T>
  T *ptr(size_t i, const char *what) const {
    return static_cast<T *>(ptr(i, what));
  }
  double number(size_t i, const char *what) const;
  int32_t integer(size_t i, const char *what) const;
  size_t size(size_t i, const char *what) const;
  bool flag(size_t i, const char *what) const;
  I32View ints(size_t i, const char *what, size_t expectLength) const;
  I32View anyInts(size_t i, const char *what) const;
  BytesView bytes(size_t i, const char *what) const;
  std::string text(size_t i, const char *what) const;
};

using Function = napi_value (*)(const Args &);

struct Export {
  Export(const char *name, Function fn);
};

// The exports called since resetCallCounts(), with their counts.
void forEachCallCount(const std::function<void(const char *, uint64_t)> &f);
void resetCallCounts();

napi_value undefined(napi_env env);
napi_value number(napi_env env, double v);
napi_value string(napi_env env, const char *s);
napi_value boolean(napi_env env, bool v);
void setProperty(napi_env env, napi_value object, const char *name, napi_value value);

}  // namespace simtrip::cuda

#define SIMTRIP_EXPORT(name)                                                                      \
  static napi_value name##_export(const ::simtrip::cuda::Args &args);                            \
  static const ::simtrip::cuda::Export name##_registration(#name, name##_export);               \
  static napi_value name##_export(const ::simtrip::cuda::Args &args)
