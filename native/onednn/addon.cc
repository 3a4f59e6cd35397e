// N-API entry point: exports the native kernels and a description of the oneDNN runtime.
#include <omp.h>

#include "common.h"

namespace simtrip {

WinogradMode &winogradMode() {
  static WinogradMode mode;
  return mode;
}

// (inference: boolean, training: boolean): engine.winograd, see winogradPays in common.h.
static napi_value setWinograd(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value args[2];
  napi_get_cb_info(env, info, &argc, args, nullptr, nullptr);
  bool inference = true, training = false;
  if (argc < 2 || napi_get_value_bool(env, args[0], &inference) != napi_ok || napi_get_value_bool(env, args[1], &training) != napi_ok) {
    napi_throw_type_error(env, nullptr, "setWinograd: expected (inference: boolean, training: boolean)");
    return nullptr;
  }
  winogradMode() = {inference, training};
  return nullptr;
}

dnnl::engine &cpuEngine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

dnnl::stream &cpuStream() {
  static dnnl::stream stream(cpuEngine());
  return stream;
}

constexpr size_t kMaxArgs = 12;

template <KernelFn fn>
static napi_value wrapKernel(napi_env env, napi_callback_info info) {
  size_t argc = kMaxArgs;
  napi_value args[kMaxArgs];
  napi_get_cb_info(env, info, &argc, args, nullptr, nullptr);
  try {
    fn(env, args, argc);
  } catch (const dnnl::error &e) {
    throwAsJs(env, e, "oneDNN: ");
  } catch (const std::exception &e) {
    throwAsJs(env, e);
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

// Whether oneDNN has a Winograd kernel on this CPU (AVX-512): one that takes a small 3x3 conv.
static bool winogradAvailable() {
  static const bool available = [] {
    using tag = dnnl::memory::format_tag;
    const auto f32 = dnnl::memory::data_type::f32;
    try {
      dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_winograd, {{1, 16, 8, 8}, f32, tag::any},
                                        {{16, 16, 3, 3}, f32, tag::any}, {{1, 16, 8, 8}, f32, tag::any}, {1, 1}, {1, 1}, {1, 1});
      dnnl::convolution_forward::primitive_desc pd(d, cpuEngine());
      return true;
    } catch (const dnnl::error &) {
      return false;
    }
  }();
  return available;
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
  // batchNormForward/Backward take the fused-ReLU arguments (an addon without them would ignore them).
  napi_value fused;
  napi_get_boolean(env, true, &fused);
  napi_set_named_property(env, obj, "batchNormRelu", fused);
  napi_value winograd;
  napi_get_boolean(env, winogradAvailable(), &winograd);
  napi_set_named_property(env, obj, "winograd", winograd);
  return obj;
}

static napi_value init(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      {"info", nullptr, runtimeInfo, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"convImpl", nullptr, convImpl, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"setWinograd", nullptr, setWinograd, nullptr, nullptr, nullptr, napi_default, nullptr},
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
  registerPlan(env, exports);
  return exports;
}

}  // namespace simtrip

NAPI_MODULE(NODE_GYP_MODULE_NAME, simtrip::init)
