// Module entry: defines every SIMTRIP_EXPORT'ed function on the addon object and turns C++ exceptions
// into JS errors with a code the backend can act on (SIMTRIP_GPU_OOM, SIMTRIP_GPU_ERROR).
#include "napi.h"

#include <cmath>
#include <string>
#include <vector>

#include "runtime.h"

namespace simtrip::cuda {

namespace {

struct Registered {
  const char *name;
  Function fn;
  uint64_t calls = 0;  // since resetCounters: the host cost of a step in native calls
};

std::vector<Registered> &registry() {
  static std::vector<Registered> r;
  return r;
}

constexpr size_t kMaxArgs = 16;

void throwCoded(napi_env env, const char *code, const std::string &message, napi_value extra[][2] = nullptr, int extras = 0) {
  napi_value msg, err, codeValue;
  napi_create_string_utf8(env, message.c_str(), message.size(), &msg);
  napi_create_error(env, nullptr, msg, &err);
  napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &codeValue);
  napi_set_named_property(env, err, "code", codeValue);
  for (int i = 0; i < extras; i++) napi_set_property(env, err, extra[i][0], extra[i][1]);
  napi_throw(env, err);
}

napi_value call(napi_env env, napi_callback_info info) {
  size_t argc = kMaxArgs;
  napi_value argv[kMaxArgs];
  void *data = nullptr;
  napi_get_cb_info(env, info, &argc, argv, nullptr, &data);
  Registered &r = registry()[reinterpret_cast<uintptr_t>(data)];
  r.calls++;
  try {
    return r.fn(Args{env, argv, argc});
  } catch (const OutOfMemory &e) {
    napi_value extra[3][2] = {{string(env, "requested"), number(env, static_cast<double>(e.requested))},
                              {string(env, "free"), number(env, static_cast<double>(e.freeBytes))},
                              {string(env, "total"), number(env, static_cast<double>(e.totalBytes))}};
    throwCoded(env, "SIMTRIP_GPU_OOM", e.what(), extra, 3);
  } catch (const DeviceError &e) {
    throwCoded(env, "SIMTRIP_GPU_ERROR", std::string(r.name) + ": " + e.what());
  } catch (const std::exception &e) {
    throwAsJs(env, e, (std::string(r.name) + ": ").c_str());
  }
  return nullptr;
}

}  // namespace

Export::Export(const char *name, Function fn) { registry().push_back({name, fn}); }

void forEachCallCount(const std::function<void(const char *, uint64_t)> &f) {
  for (const Registered &r : registry()) {
    if (r.calls) f(r.name, r.calls);
  }
}

void resetCallCounts() {
  for (Registered &r : registry()) r.calls = 0;
}

void Args::need(size_t n, const char *function) const {
  if (count < n) throw ArgError(std::string(function) + ": expected " + std::to_string(n) + " arguments, got " + std::to_string(count));
}

void *Args::ptr(size_t i, const char *what) const {
  const double v = numberArg(env, values[i], what);
  if (!(v >= 0) || v != std::floor(v) || v > 9007199254740992.0) throw ArgError(std::string(what) + ": not a device pointer");
  return reinterpret_cast<void *>(static_cast<uintptr_t>(v));
}

double Args::number(size_t i, const char *what) const { return numberArg(env, values[i], what); }

int32_t Args::integer(size_t i, const char *what) const { return intArg(env, values[i], what); }

size_t Args::size(size_t i, const char *what) const {
  const double v = numberArg(env, values[i], what);
  if (!(v >= 0) || v != std::floor(v)) throw ArgError(std::string(what) + ": expected a non-negative integer");
  return static_cast<size_t>(v);
}

bool Args::flag(size_t i, const char *what) const {
  bool out = false;
  if (napi_get_value_bool(env, values[i], &out) != napi_ok) throw ArgError(std::string(what) + ": expected a boolean");
  return out;
}

I32View Args::ints(size_t i, const char *what, size_t expectLength) const { return i32Arg(env, values[i], what, expectLength); }

I32View Args::anyInts(size_t i, const char *what) const { return anyI32Arg(env, values[i], what); }

BytesView Args::bytes(size_t i, const char *what) const { return bytesArg(env, values[i], what); }

std::string Args::text(size_t i, const char *what) const {
  size_t length = 0;
  if (napi_get_value_string_utf8(env, values[i], nullptr, 0, &length) != napi_ok) throw ArgError(std::string(what) + ": expected a string");
  std::string out(length, '\0');
  napi_get_value_string_utf8(env, values[i], out.data(), length + 1, &length);
  return out;
}

napi_value undefined(napi_env env) {
  napi_value v;
  napi_get_undefined(env, &v);
  return v;
}

napi_value number(napi_env env, double v) {
  napi_value out;
  napi_create_double(env, v, &out);
  return out;
}

napi_value string(napi_env env, const char *s) {
  napi_value out;
  napi_create_string_utf8(env, s, NAPI_AUTO_LENGTH, &out);
  return out;
}

napi_value boolean(napi_env env, bool v) {
  napi_value out;
  napi_get_boolean(env, v, &out);
  return out;
}

void setProperty(napi_env env, napi_value object, const char *name, napi_value value) {
  napi_set_named_property(env, object, name, value);
}

static napi_value init(napi_env env, napi_value exports) {
  const auto &r = registry();
  std::vector<napi_property_descriptor> props;
  props.reserve(r.size());
  for (size_t i = 0; i < r.size(); i++) {
    props.push_back({r[i].name, nullptr, call, nullptr, nullptr, nullptr, napi_default, reinterpret_cast<void *>(i)});
  }
  napi_define_properties(env, exports, props.size(), props.data());
#ifdef SIMTRIP_HOST_EMU
  setProperty(env, exports, "flavour", string(env, "host"));
#else
  setProperty(env, exports, "flavour", string(env, "cuda"));
#endif
  return exports;
}

}  // namespace simtrip::cuda

NAPI_MODULE(NODE_GYP_MODULE_NAME, simtrip::cuda::init)
