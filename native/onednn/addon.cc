// N-API entry point: exports the native kernels and a description of the oneDNN runtime.
#include <omp.h>

#include "common.h"

namespace simtrip {

dnnl::engine &cpuEngine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

dnnl::stream &cpuStream() {
  static dnnl::stream stream(cpuEngine());
  return stream;
}

static void expectTypedArray(napi_env env, napi_value v, const char *what, napi_typedarray_type want,
                             void **data, size_t *length) {
  bool isTyped = false;
  napi_is_typedarray(env, v, &isTyped);
  if (!isTyped) throw ArgError(std::string(what) + ": expected a typed array");
  napi_typedarray_type type;
  napi_value buffer;
  size_t offset;
  napi_get_typedarray_info(env, v, &type, length, data, &buffer, &offset);
  if (type != want) throw ArgError(std::string(what) + ": wrong typed array element type");
}

F32View f32Arg(napi_env env, napi_value v, const char *what, size_t expectLength) {
  F32View view;
  void *data = nullptr;
  expectTypedArray(env, v, what, napi_float32_array, &data, &view.length);
  view.data = static_cast<float *>(data);
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
  napi_valuetype t;
  napi_typeof(env, v, &t);
  if (t == napi_null || t == napi_undefined) return F32View{};
  return f32Arg(env, v, what, expectLength);
}

I32View i32Arg(napi_env env, napi_value v, const char *what, size_t expectLength) {
  I32View view;
  void *data = nullptr;
  expectTypedArray(env, v, what, napi_int32_array, &data, &view.length);
  view.data = static_cast<const int32_t *>(data);
  if (view.length != expectLength) {
    throw ArgError(std::string(what) + ": expected " + std::to_string(expectLength) + " parameters");
  }
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

constexpr size_t kMaxArgs = 12;

template <KernelFn fn>
static napi_value wrapKernel(napi_env env, napi_callback_info info) {
  size_t argc = kMaxArgs;
  napi_value args[kMaxArgs];
  napi_get_cb_info(env, info, &argc, args, nullptr, nullptr);
  try {
    fn(env, args, argc);
  } catch (const ArgError &e) {
    napi_throw_type_error(env, nullptr, e.what());
  } catch (const dnnl::error &e) {
    napi_throw_error(env, nullptr, (std::string("oneDNN: ") + e.what()).c_str());
  } catch (const std::exception &e) {
    napi_throw_error(env, nullptr, e.what());
  }
  return nullptr;
}

static napi_value convImpl(napi_env env, napi_callback_info info) {
  size_t argc = kMaxArgs;
  napi_value args[kMaxArgs];
  napi_get_cb_info(env, info, &argc, args, nullptr, nullptr);
  try {
    std::string s = convImplInfo(env, args, argc);
    napi_value out;
    napi_create_string_utf8(env, s.c_str(), s.size(), &out);
    return out;
  } catch (const std::exception &e) {
    napi_throw_error(env, nullptr, e.what());
    return nullptr;
  }
}

static napi_value runtimeInfo(napi_env env, napi_callback_info) {
  const dnnl_version_t *v = dnnl_version();
  std::string version = std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch);
  napi_value obj, ver, threads, isa;
  napi_create_object(env, &obj);
  napi_create_string_utf8(env, version.c_str(), version.size(), &ver);
  napi_create_int32(env, omp_get_max_threads(), &threads);
  const char *cpuRuntime = v->cpu_runtime == DNNL_RUNTIME_OMP ? "omp" : v->cpu_runtime == DNNL_RUNTIME_SEQ ? "seq" : "other";
  napi_create_string_utf8(env, cpuRuntime, NAPI_AUTO_LENGTH, &isa);
  napi_set_named_property(env, obj, "version", ver);
  napi_set_named_property(env, obj, "threads", threads);
  napi_set_named_property(env, obj, "runtime", isa);
  return obj;
}

static napi_value init(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      {"info", nullptr, runtimeInfo, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"convImpl", nullptr, convImpl, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"convForward", nullptr, wrapKernel<convForward>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"convBackwardData", nullptr, wrapKernel<convBackwardData>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"convBackwardWeights", nullptr, wrapKernel<convBackwardWeights>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"matmul", nullptr, wrapKernel<matmul>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"maxPool", nullptr, wrapKernel<maxPool>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"maxPoolGrad", nullptr, wrapKernel<maxPoolGrad>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"batchNormForward", nullptr, wrapKernel<batchNormForward>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"batchNormBackward", nullptr, wrapKernel<batchNormBackward>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"groupNormForward", nullptr, wrapKernel<groupNormForward>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"groupNormBackward", nullptr, wrapKernel<groupNormBackward>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"eltwiseUnary", nullptr, wrapKernel<eltwiseUnary>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"eltwiseBinary", nullptr, wrapKernel<eltwiseBinary>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"reduceMid", nullptr, wrapKernel<reduceMid>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"roundToHalf", nullptr, wrapKernel<roundToHalf>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"sgdUpdate", nullptr, wrapKernel<sgdUpdate>, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}

}  // namespace simtrip

NAPI_MODULE(NODE_GYP_MODULE_NAME, simtrip::init)
