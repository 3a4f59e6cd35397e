// Element-wise kernels that dominate a training step once convolutions and batch norm are native:
// ReLU and its gradient's Step, and the Add/Multiply of residuals, gradient accumulation and ReLU
// backward. tfjs-backend-cpu runs them as one JS closure call per element. NaN handling follows the
// cpu kernels (Math.max(0, NaN) is NaN; Step maps NaN to NaN). Also the float16 rounding of
// engine.precision mixed16 (src/ops/fp16_round.ts).
#include <cstring>
#include <vector>

#include "common.h"
#include "half_bits.h"

namespace simtrip {

namespace {

// Codes shared with src/engine/onednn/kernels/eltwise.ts.
enum UnaryOp { RELU = 0, STEP = 1 };
enum BinaryOp { ADD = 0, MUL = 1, RELU_GRAD = 2 };

// Below this many elements a parallel region costs more than the loop.
constexpr size_t kParallelMin = size_t(1) << 15;

template <typename F>
void unaryLoop(const float *x, float *y, size_t n, F f) {
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (size_t i = 0; i < n; i++) y[i] = f(x[i]);
}

// out[i] = f(a[i], b[i]) over two operands of one shape.
template <typename F>
void pairLoop(const float *a, const float *b, float *out, size_t n, F f) {
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (size_t i = 0; i < n; i++) out[i] = f(a[i], b[i]);
}

// out = full op small over the output viewed as [outer, mid, inner], where `small` is [outer, 1, inner]:
// one layout covers same shape (mid 1), a repeating suffix such as a per-channel vector (outer 1), a
// per-row value (inner 1) and NHWC against [N,1,1,C].
template <typename F>
void broadcastLoop(const float *full, const float *small, float *out, int64_t outer, int64_t mid, int64_t inner,
                   bool smallFirst, F f) {
  const size_t n = static_cast<size_t>(outer * mid * inner);
  if (mid == 1) {
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
    for (int64_t i = 0; i < outer * inner; i++) out[i] = smallFirst ? f(small[i], full[i]) : f(full[i], small[i]);
    return;
  }
#pragma omp parallel for collapse(2) schedule(static) if (n >= kParallelMin)
  for (int64_t o = 0; o < outer; o++) {
    for (int64_t m = 0; m < mid; m++) {
      const int64_t base = (o * mid + m) * inner;
      const float *s = small + o * inner;
      const float *in = full + base;
      float *dst = out + base;
      for (int64_t k = 0; k < inner; k++) dst[k] = smallFirst ? f(s[k], in[k]) : f(in[k], s[k]);
    }
  }
}

}  // namespace

// (x, out): out = x rounded to the float16 grid, element-wise (see roundToHalfBits).
void roundToHalf(napi_env env, napi_value *args, size_t argc) {
  if (argc < 2) throw ArgError("roundToHalf: expected 2 arguments");
  const F32View x = anyF32Arg(env, args[0], "x");
  const F32View y = f32Arg(env, args[1], "out", x.length);
  const int64_t n = static_cast<int64_t>(x.length);
#pragma omp parallel for schedule(static) if (x.length >= kParallelMin)
  for (int64_t i = 0; i < n; i++) {
    uint32_t bits;
    std::memcpy(&bits, x.data + i, sizeof bits);
    bits = roundToHalfBits(bits);
    std::memcpy(y.data + i, &bits, sizeof bits);
  }
}

// (x, out, op, alpha)
void eltwiseUnary(napi_env env, napi_value *args, size_t argc) {
  if (argc < 4) throw ArgError("eltwiseUnary: expected 4 arguments");
  const F32View x = anyF32Arg(env, args[0], "x");
  const F32View y = f32Arg(env, args[1], "out", x.length);
  const int32_t op = intArg(env, args[2], "op");
  const float alpha = static_cast<float>(numberArg(env, args[3], "alpha"));
  switch (op) {
    case RELU:
      unaryLoop(x.data, y.data, x.length, reluOf);
      break;
    case STEP:
      unaryLoop(x.data, y.data, x.length, [alpha](float v) { return stepOf(v, alpha); });
      break;
    default:
      throw ArgError("eltwiseUnary: unknown op");
  }
}

// (a, b, out, op, params[outer, mid, inner]): one operand fills out = [outer, mid, inner], the other
// is [outer, 1, inner] (or also full, when mid is 1).
void eltwiseBinary(napi_env env, napi_value *args, size_t argc) {
  if (argc < 5) throw ArgError("eltwiseBinary: expected 5 arguments");
  const I32View p = i32Arg(env, args[4], "params", 3);
  const int64_t outer = p.data[0], mid = p.data[1], inner = p.data[2];
  if (outer <= 0 || mid <= 0 || inner <= 0) throw ArgError("eltwiseBinary: sizes must be positive");
  const size_t n = static_cast<size_t>(outer * mid * inner);
  const size_t smallSize = static_cast<size_t>(outer * inner);
  const F32View a = anyF32Arg(env, args[0], "a");
  const F32View b = anyF32Arg(env, args[1], "b");
  const F32View out = f32Arg(env, args[2], "out", n);
  const int32_t op = intArg(env, args[3], "op");
  // With mid 1 both operands are full and either may play `small`.
  const bool aFull = a.length == n && b.length == smallSize;
  if (!aFull && !(b.length == n && a.length == smallSize)) throw ArgError("eltwiseBinary: operand sizes do not match params");
  const float *full = aFull ? a.data : b.data;
  const float *small = aFull ? b.data : a.data;
  switch (op) {
    case ADD:
      broadcastLoop(full, small, out.data, outer, mid, inner, !aFull, [](float x, float y) { return x + y; });
      break;
    case MUL:
      broadcastLoop(full, small, out.data, outer, mid, inner, !aFull, [](float x, float y) { return x * y; });
      break;
    case RELU_GRAD:
      // ReLU's gradient, dy * step(x), in one pass instead of Step then Multiply. Written as that
      // product (not a select) so NaN and infinite dy or x give what the two-op version gives.
      if (!aFull || mid != 1 || b.length != n) throw ArgError("eltwiseBinary: relu grad takes dy and x of one shape");
      pairLoop(a.data, b.data, out.data, n, [](float dy, float x) { return dy * stepOf(x, 0.f); });
      break;
    default:
      throw ArgError("eltwiseBinary: unknown op");
  }
}

// (x, out, params[outer, mid, inner], mean): sums x viewed as [outer, mid, inner] over mid. Each output
// accumulates in double in the order tfjs-backend-cpu uses, and Mean divides every element by the count
// in float32 before summing as its cpu kernel does, so both agree bit for bit.
void reduceMid(napi_env env, napi_value *args, size_t argc) {
  if (argc < 4) throw ArgError("reduceMid: expected 4 arguments");
  const I32View p = i32Arg(env, args[2], "params", 3);
  const int64_t outer = p.data[0], mid = p.data[1], inner = p.data[2];
  if (outer <= 0 || mid <= 0 || inner <= 0) throw ArgError("reduceMid: sizes must be positive");
  const F32View x = f32Arg(env, args[0], "x", static_cast<size_t>(outer * mid * inner));
  const F32View out = f32Arg(env, args[1], "out", static_cast<size_t>(outer * inner));
  bool mean = false;
  if (napi_get_value_bool(env, args[3], &mean) != napi_ok) throw ArgError("reduceMid: mean must be a boolean");
  const double count = static_cast<double>(mid);
#pragma omp parallel for schedule(static) if (static_cast<size_t>(outer * mid * inner) >= kParallelMin && outer > 1)
  for (int64_t o = 0; o < outer; o++) {
    std::vector<double> acc(inner, 0.0);
    for (int64_t m = 0; m < mid; m++) {
      const float *row = x.data + (o * mid + m) * inner;
      if (mean) {
        for (int64_t k = 0; k < inner; k++) acc[k] += static_cast<float>(static_cast<double>(row[k]) / count);
      } else {
        for (int64_t k = 0; k < inner; k++) acc[k] += row[k];
      }
    }
    for (int64_t k = 0; k < inner; k++) out.data[o * inner + k] = static_cast<float>(acc[k]);
  }
}

}  // namespace simtrip
