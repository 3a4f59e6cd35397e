// The GroupNorm forward sweep, shared by the training kernel (tfjs' NHWC) and the inference plan
// (oneDNN's channel-blocked layouts), so both normalise with the same arithmetic.
#pragma once

#include <cstdint>

namespace simtrip {

struct GroupNormLayout {
  int64_t n, hw, c, groups;
  // Channels per block of the memory layout: c for NHWC, 16 or 8 for nChw16c / nChw8c. Channel ch of
  // pixel p of sample n is at ((n * c / block + ch / block) * hw + p) * block + ch % block. A group
  // must lie inside one block or cover whole blocks (c % block == 0, and block % (c / groups) == 0 or
  // (c / groups) % block == 0); groupNormLayoutFits says whether it does.
  int64_t block;
};

bool groupNormLayoutFits(const GroupNormLayout &l);

// y = gamma * (x - mean) / sqrt(var + eps) + beta per (sample, group), then max(y, 0) when `relu`.
// meanOut / varOut ([n * groups], sample-major) may be null when the caller has no use for them.
void groupNormForwardSweep(const float *x, float *y, const float *gamma, const float *beta, double eps,
                           const GroupNormLayout &l, bool relu, float *meanOut, float *varOut);

}  // namespace simtrip
