// Shared plumbing for the simtrip oneDNN addon: one engine/stream, the kernel entry points. The N-API
// argument helpers are native/shared/napi_args.h, shared with the CUDA addon.
#pragma once

#include <node_api.h>

#include "napi_args.h"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "oneapi/dnnl/dnnl.hpp"

namespace simtrip {

// engine.winograd: whether inference plans and training convs may use Winograd (setWinograd).
struct WinogradMode {
  bool inference = true;
  bool training = false;
};
WinogradMode &winogradMode();

// Whether a convolution should use Winograd F(4x4, 3x3) (oneDNN's jit_wino_4x3, AVX-512 only; where
// oneDNN has no such kernel, creating it fails and callers fall back to the direct conv). Measured
// per conv on ResNet-18 (32 px), ResNet-50 (224 px) and BiT (128 px), inference and training: 15-57 %
// faster for 3x3 stride-1 convs with 8x8 outputs or larger and at least 64 output tiles of 4x4 per
// call; slower below that (10-90 % on 4x4 and 7x7 outputs and small batches) and 6x slower on a
// 3-channel stem. Its rounding differs from the direct conv's by about 1e-6 relative per conv, which
// the features keep (a few 1e-6) but an ill-conditioned training-mode gradient can amplify to 1e-3,
// hence training only on request. SIMTRIP_ONEDNN_WINOGRAD=0 keeps every conv direct whatever the mode.
inline bool winogradPays(bool training, int64_t kh, int64_t kw, int64_t strideH, int64_t strideW, bool dilated, int64_t inChannels, int64_t batch,
                         int64_t oh, int64_t ow) {
  static const bool vetoed = [] {
    const char *v = std::getenv("SIMTRIP_ONEDNN_WINOGRAD");
    return v && std::string(v) == "0";
  }();
  const bool allowed = !vetoed && (training ? winogradMode().training : winogradMode().inference);
  const int64_t tiles = batch * ((oh + 3) / 4) * ((ow + 3) / 4);
  return allowed && kh == 3 && kw == 3 && strideH == 1 && strideW == 1 && !dilated && inChannels >= 16 && oh >= 8 && ow >= 8 && tiles >= 64;
}

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
