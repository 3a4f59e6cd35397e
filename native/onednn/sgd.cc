// One fused SGD update (PyTorch semantics, dampening 0, no nesterov) per parameter:
//   d = g + w*wd;  buf' = first ? d : buf*momentum + d;  w' = w - buf'*lr
// in float32, one rounding per operation and in the same order as the composed tfjs ops in
// src/optim/sgd.ts, so the result matches the cpu backend bit for bit (the build targets baseline
// x86-64 in ISO C++ mode: no FMA contraction). Scalars arrive as doubles and are rounded to float32
// as tfjs rounds a JS number into a scalar tensor.
#include <omp.h>

#include "common.h"

namespace simtrip {

// (w, g, buf | null, wOut, bufOut, lr, momentum, weightDecay); a null buf means the first step.
void sgdUpdate(napi_env env, napi_value *args, size_t argc) {
  if (argc < 8) throw ArgError("sgdUpdate: expected 8 arguments");
  const F32View wIn = anyF32Arg(env, args[0], "w");
  const size_t n = wIn.length;
  const float *w = wIn.data;
  const float *g = f32Arg(env, args[1], "g", n).data;
  const float *buf = optionalF32Arg(env, args[2], "buf", n).data;
  float *wOut = f32Arg(env, args[3], "wOut", n).data;
  float *bufOut = f32Arg(env, args[4], "bufOut", n).data;
  const float lr = static_cast<float>(numberArg(env, args[5], "lr"));
  const float momentum = static_cast<float>(numberArg(env, args[6], "momentum"));
  const float wd = static_cast<float>(numberArg(env, args[7], "weightDecay"));
  const bool decay = wd != 0.0f;
  const int64_t size = static_cast<int64_t>(n);
  // Small tensors (biases, BN affine) are not worth waking the thread team for.
#pragma omp parallel for schedule(static) if (size >= 32768)
  for (int64_t i = 0; i < size; i++) {
    float d = g[i];
    if (decay) {
      const float decayTerm = w[i] * wd;
      d = d + decayTerm;
    }
    float b = d;
    if (buf) {
      const float carried = buf[i] * momentum;
      b = carried + d;
    }
    bufOut[i] = b;
    const float step = b * lr;
    wOut[i] = w[i] - step;
  }
}

}  // namespace simtrip
