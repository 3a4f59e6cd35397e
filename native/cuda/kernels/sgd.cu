// One fused SGD update per parameter (PyTorch semantics, dampening 0, no nesterov):
//   d = g + w*wd;  buf' = first ? d : buf*momentum + d;  w' = w - buf'*lr
// with one float32 rounding per operation in the order of the composed tfjs ops in src/optim/sgd.ts,
// so the result is bit-identical to the cpu backend (and to native/onednn/sgd.cc). Scalars arrive as
// doubles and are rounded to float32, as tfjs rounds a JS number into a scalar tensor.
//
// The gradient may be stored as halves (a mixed16 gradient rounded to the half grid) and is then read
// directly; the weights and the momentum buffer are float32 master copies.
//
// With a gate (a float32 scalar on the device, 1 when the step's loss and gradients were finite) the
// update is applied only where it holds 1, else the weights and buffer are copied unchanged (a first
// step's buffer starts at zero): the step queues its update without waiting to read the loss.
#include "../launch.h"
#include "../napi.h"
#include "float_rn.cuh"
#include "grid.cuh"
#include "half_storage.cuh"

namespace simtrip::cuda {

namespace {

template <class G>
__global__ void sgdKernel(const float *__restrict__ w, const G *__restrict__ g, const float *__restrict__ buf, float *__restrict__ wOut,
                          float *__restrict__ bufOut, size_t n, float lr, float momentum, float weightDecay, const float *__restrict__ gate) {
  if (gate && *gate != 1.f) {
    for (size_t i = gridFirst(); i < n; i += gridStride()) {
      wOut[i] = w[i];
      bufOut[i] = buf ? buf[i] : 0.f;
    }
    return;
  }
  for (size_t i = gridFirst(); i < n; i += gridStride()) {
    const float wi = w[i], gi = loaded(g[i]);
    // No decay term at all when weightDecay is 0: g + w*0 would turn a -0 gradient into +0.
    const float d = weightDecay != 0.f ? addRn(gi, mulRn(wi, weightDecay)) : gi;
    const float b = buf ? addRn(mulRn(buf[i], momentum), d) : d;
    bufOut[i] = b;
    wOut[i] = subRn(wi, mulRn(b, lr));
  }
}

}  // namespace

namespace {

template <class G>
void sgdUpdate(const Args &args, const G *g) {
  const size_t n = args.size(5, "n");
  launchOver("sgdUpdate", sgdKernel<G>, n, 256, args.ptr<const float>(0, "w"), g, args.ptr<const float>(2, "buf"),
         args.ptr<float>(3, "wOut"), args.ptr<float>(4, "bufOut"), n, static_cast<float>(args.number(6, "lr")),
         static_cast<float>(args.number(7, "momentum")), static_cast<float>(args.number(8, "weightDecay")),
         args.count > 10 ? args.ptr<const float>(10, "gate") : nullptr);
}

}  // namespace

// (w, g, buf | 0, wOut, bufOut, n, lr, momentum, weightDecay[, gHalf[, gate | 0]]); a null buf is the
// first step; gHalf: g is stored as halves; gate: applied only where *gate == 1.
SIMTRIP_EXPORT(sgdUpdate) {
  args.need(9, "sgdUpdate");
  if (args.count > 9 && args.flag(9, "gHalf")) {
    sgdUpdate(args, args.ptr<const Half>(1, "g"));
  } else {
    sgdUpdate(args, args.ptr<const float>(1, "g"));
  }
  return undefined(args.env);
}

}  // namespace simtrip::cuda
