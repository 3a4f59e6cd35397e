// One fused SGD update per parameter (PyTorch semantics, dampening 0, no nesterov):
//   d = g + w*wd;  buf' = first ? d : buf*momentum + d;  w' = w - buf'*lr
// with one float32 rounding per operation in the order of the composed tfjs ops in src/optim/sgd.ts,
// so the result is bit-identical to the cpu backend (and to native/onednn/sgd.cc). Scalars arrive as
// doubles and are rounded to float32, as tfjs rounds a JS number into a scalar tensor.
#include "../launch.h"
#include "../napi.h"
#include "float_rn.cuh"
#include "grid.cuh"

namespace simtrip::cuda {

namespace {

__global__ void sgdKernel(const float *__restrict__ w, const float *__restrict__ g, const float *__restrict__ buf, float *__restrict__ wOut,
                          float *__restrict__ bufOut, size_t n, float lr, float momentum, float weightDecay) {
  for (size_t i = gridFirst(); i < n; i += gridStride()) {
    const float wi = w[i];
    // No decay term at all when weightDecay is 0: g + w*0 would turn a -0 gradient into +0.
    const float d = weightDecay != 0.f ? addRn(g[i], mulRn(wi, weightDecay)) : g[i];
    const float b = buf ? addRn(mulRn(buf[i], momentum), d) : d;
    bufOut[i] = b;
    wOut[i] = subRn(wi, mulRn(b, lr));
  }
}

}  // namespace

// (w, g, buf | 0, wOut, bufOut, n, lr, momentum, weightDecay); a null buf is the first step.
SIMTRIP_EXPORT(sgdUpdate) {
  args.need(9, "sgdUpdate");
  const size_t n = args.size(5, "n");
  launch("sgdUpdate", sgdKernel, gridFor(n, 256), dim3(256), args.ptr<const float>(0, "w"), args.ptr<const float>(1, "g"),
         args.ptr<const float>(2, "buf"), args.ptr<float>(3, "wOut"), args.ptr<float>(4, "bufOut"), n, static_cast<float>(args.number(6, "lr")),
         static_cast<float>(args.number(7, "momentum")), static_cast<float>(args.number(8, "weightDecay")));
  return undefined(args.env);
}

}  // namespace simtrip::cuda
