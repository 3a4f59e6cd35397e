// The half storage conversions of native/shared/half_bits.h against GCC's IEEE _Float16: every half
// to float32 and back, and 20 million float32 patterns through roundToHalfBits to half bits.
// Built and run by test/native/half_bits.test.ts; exits 1 on a mismatch.
#include <cmath>
#include <cstdio>
#include <cstring>

#include "shared/half_bits.h"

using namespace simtrip;

int main() {
  long bad = 0;
  for (uint32_t h = 0; h < 65536; h++) {
    const uint32_t fb = floatBitsOfHalf(static_cast<uint16_t>(h));
    _Float16 hv;
    const uint16_t hh = static_cast<uint16_t>(h);
    std::memcpy(&hv, &hh, 2);
    const float ref = static_cast<float>(hv);
    uint32_t rb;
    std::memcpy(&rb, &ref, 4);
    // GCC quietens NaNs on conversion; the payload is simtrip's own contract (kept), checked by the round trip.
    const bool nan = ((h >> 10) & 31) == 31 && (h & 1023);
    if (!nan && fb != rb) bad++;
    if (halfBitsOfGridFloat(fb) != h) bad++;
  }
  uint32_t x = 12345;
  for (long i = 0; i < 20000000; i++) {
    x = x * 1664525u + 1013904223u;
    float f;
    std::memcpy(&f, &x, 4);
    if (std::isnan(f)) continue;
    const uint16_t a = halfBitsOfGridFloat(roundToHalfBits(x));
    const _Float16 hv = static_cast<_Float16>(f);
    uint16_t b;
    std::memcpy(&b, &hv, 2);
    if (a != b) bad++;
  }
  std::printf("mismatches %ld\n", bad);
  return bad != 0;
}
