// Shared plumbing for the simtrip oneDNN addon: one engine/stream, the kernel entry points. The N-API
// argument helpers are native/shared/napi_args.h, shared with the CUDA addon.
#pragma once

#include <node_api.h>

#include "napi_args.h"

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "oneapi/dnnl/dnnl.hpp"

namespace simtrip {

dnnl::engine &cpuEngine();
dnnl::stream &cpuStream();

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

// tf.step: 1 where v > 0, alpha elsewhere, NaN kept. Written as two selects on a value rather than a
// nested conditional: the nested form compiled to a branch that mispredicts on activations of random
// sign (9x slower: 30 ms against 3 ms over a 128x32x32x64 tensor); this form vectorises.
inline float stepOf(float v, float alpha) {
  const float s = v > 0.f ? 1.f : alpha;
  return v == v ? s : v;
}

// tf.relu: max(v, 0) with NaN kept (std::max would drop it).
inline float reluOf(float v) { return v > 0.f ? v : (v != v ? v : 0.f); }

// The inference plan's functions (plan.cc): planCreate, planRun, planInfo, planDispose.
void registerPlan(napi_env env, napi_value exports);

}  // namespace simtrip
