// Antialiased separable resampling of 8-bit RGB images, the way PIL's Image.resize computes it: each
// output pixel is a normalised weighted sum of the source pixels under a kernel stretched by the
// reduction factor. src/io/resample.ts is the same computation in TypeScript (the reference the tests
// hold this one to, and the resampler where the addon is absent).
#pragma once

#include <cstdint>
#include <vector>

namespace simtrip {

enum class Kernel : int { Nearest = 0, Cubic = 1, Mitchell = 2, Lanczos2 = 3, Lanczos3 = 4 };

// A window [start, start + length) of the source, in source pixels (fractional: a centred crop).
struct Window {
  double start;
  double length;
};

// out (outH x outW x 3) = src (srcH x srcW x 3) restricted to the two windows, resampled.
void resampleRGB(const uint8_t *src, int srcW, int srcH, Window x, Window y, uint8_t *out, int outW, int outH,
                 Kernel kernel);

}  // namespace simtrip
