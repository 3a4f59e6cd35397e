// The element-wise kernel family: unary maps, binary maps with numpy broadcasting, comparisons,
// select, casts, fills and n-ary sums, each op a small functor compiled into its own kernel through
// the maps of eltwise.cuh.
//
// Every op follows tfjs' cpu backend: the cpu computes in doubles and stores into a Float32Array or
// an Int32Array (JS ToInt32: truncation modulo 2^32, NaN and infinities to 0), and Math.max/min/pow,
// Math.round and JS % have their own NaN and signed-zero rules. Arithmetic, comparisons and the
// piecewise ops give the cpu's bits; where a float computation would round differently from the cpu's
// double one (FloorDiv, Mod, SquaredDifference, LeakyRelu's product, Erf) the op computes in double
// too, none of them on a training step's hot path. Transcendentals (exp, log, tanh, sin, pow, ...)
// use CUDA's float functions, within a few ulp of the cpu.
//
// Op codes are shared with src/engine/cuda/kernels/eltwise.ts (UNARY and BINARY there); dtype codes
// are those of common.ts (0 float32, 1 int32 and bool).
//
// Half storage (engine.precision mixed16): the ops a mixed16 step runs on activations and gradients
// stored as halves read them directly (a storage bit per input), computing on the floats they stand
// for, so the results are those of the float32 path bit for bit. Their outputs are float32, except
// for ops whose results stay on the half grid for every half input (sign changes, Step), which can
// store them as halves too.
#include <cmath>
#include <type_traits>

#include "eltwise.cuh"

namespace simtrip::cuda {

namespace {

constexpr int kFloat32 = 0;
constexpr int kInt32 = 1;

// ---- JS number semantics ----

// What an Int32Array stores for a JS number: truncated toward zero, modulo 2^32; NaN and infinities 0.
__device__ __forceinline__ int32_t toInt32(double v) {
  if (fabs(v) < 2147483648.0) return static_cast<int32_t>(v);
  if (!(fabs(v) < INFINITY)) return 0;
  double m = fmod(trunc(v), 4294967296.0);
  if (m < 0) m += 4294967296.0;
  return static_cast<int32_t>(static_cast<uint32_t>(m));
}

// int32 arithmetic that wraps as the cpu's Int32Array stores do, without signed overflow in C++.
__device__ __forceinline__ int32_t wrap(uint32_t v) { return static_cast<int32_t>(v); }
__device__ __forceinline__ uint32_t bits(int32_t v) { return static_cast<uint32_t>(v); }

__device__ __forceinline__ bool negativeZeroOrBelow(float x) { return (__float_as_uint(x) >> 31) != 0; }

// JS's a % b (C's fmod) with tfjs' adjustment to the sign of b.
__device__ __forceinline__ double floorMod(double a, double b) {
  const double rem = fmod(a, b);
  return (a < 0 && b < 0) || (a >= 0 && b >= 0) ? rem : fmod(rem + b, b);
}

// Math.pow where C's pow differs: pow(x, NaN) and pow(+-1, +-Infinity) are NaN in JS, 1 in C.
__device__ __forceinline__ bool jsPowIsNaN(double a, double b) { return isnan(b) || (fabs(a) == 1.0 && isinf(b)); }

// ---- binary ops ----

struct Add {
  __device__ float operator()(float a, float b) const { return a + b; }
  __device__ int32_t operator()(int32_t a, int32_t b) const { return wrap(bits(a) + bits(b)); }
};
struct Sub {
  __device__ float operator()(float a, float b) const { return a - b; }
  __device__ int32_t operator()(int32_t a, int32_t b) const { return wrap(bits(a) - bits(b)); }
};
struct Mul {
  __device__ float operator()(float a, float b) const { return a * b; }
  __device__ int32_t operator()(int32_t a, int32_t b) const { return wrap(bits(a) * bits(b)); }
};
// On int32 the cpu divides in doubles and truncates into the Int32Array (x / 0 gives 0).
struct RealDiv {
  __device__ float operator()(float a, float b) const { return a / b; }
  __device__ int32_t operator()(int32_t a, int32_t b) const { return toInt32(double(a) / double(b)); }
};
// int32 output for every input dtype, as the cpu's.
struct FloorDiv {
  template <class T>
  __device__ int32_t operator()(T a, T b) const {
    return toInt32(floor(double(a) / double(b)));
  }
};
// Math.max: NaN wins, and +0 is above -0.
struct Maximum {
  __device__ float operator()(float a, float b) const {
    if (a > b || isnan(a)) return a;
    if (b > a || isnan(b)) return b;
    return negativeZeroOrBelow(a) ? b : a;
  }
  __device__ int32_t operator()(int32_t a, int32_t b) const { return a > b ? a : b; }
};
struct Minimum {
  __device__ float operator()(float a, float b) const {
    if (a < b || isnan(a)) return a;
    if (b < a || isnan(b)) return b;
    return negativeZeroOrBelow(a) ? a : b;
  }
  __device__ int32_t operator()(int32_t a, int32_t b) const { return a < b ? a : b; }
};
// Squares (tf.norm's pow(|x|, 2)) as one multiply: the cpu's double square rounded to float is
// exactly the float product, which powf need not be.
struct Pow {
  __device__ float operator()(float a, float b) const {
    if (b == 2.0f) return a * a;
    return jsPowIsNaN(a, b) ? NAN : powf(a, b);
  }
  __device__ int32_t operator()(int32_t a, int32_t b) const { return toInt32(pow(double(a), double(b))); }
};
// In double, as the cpu: float rounding of the difference and then of the square can differ from
// the cpu's one rounding of the double square in the last bit.
struct SquaredDifference {
  __device__ float operator()(float a, float b) const {
    const double d = double(a) - double(b);
    return static_cast<float>(d * d);
  }
  __device__ int32_t operator()(int32_t a, int32_t b) const {
    const uint32_t d = bits(a) - bits(b);
    return wrap(d * d);
  }
};
struct Mod {
  __device__ float operator()(float a, float b) const { return static_cast<float>(floorMod(a, b)); }
  __device__ int32_t operator()(int32_t a, int32_t b) const { return toInt32(floorMod(a, b)); }
};
struct Atan2 {
  __device__ float operator()(float a, float b) const { return atan2f(a, b); }
};
struct Prelu {
  __device__ float operator()(float x, float alpha) const { return x < 0 ? alpha * x : x; }
};

// Comparisons give bool, stored as int32 0/1; NaN compares false (unequal).
struct Equal {
  template <class T>
  __device__ int32_t operator()(T a, T b) const {
    return a == b;
  }
};
struct NotEqual {
  template <class T>
  __device__ int32_t operator()(T a, T b) const {
    return a != b;
  }
};
struct Greater {
  template <class T>
  __device__ int32_t operator()(T a, T b) const {
    return a > b;
  }
};
struct GreaterEqual {
  template <class T>
  __device__ int32_t operator()(T a, T b) const {
    return a >= b;
  }
};
struct Less {
  template <class T>
  __device__ int32_t operator()(T a, T b) const {
    return a < b;
  }
};
struct LessEqual {
  template <class T>
  __device__ int32_t operator()(T a, T b) const {
    return a <= b;
  }
};
// JS's && and ||: the deciding operand itself.
struct LogicalAnd {
  __device__ int32_t operator()(int32_t a, int32_t b) const { return a != 0 ? b : a; }
};
struct LogicalOr {
  __device__ int32_t operator()(int32_t a, int32_t b) const { return a != 0 ? a : b; }
};

// ---- unary ops ----

struct Abs {
  __device__ float operator()(float x) const { return fabsf(x); }
  __device__ int32_t operator()(int32_t x) const { return x < 0 ? wrap(0u - bits(x)) : x; }
};
struct Neg {
  __device__ float operator()(float x) const { return -x; }
  __device__ int32_t operator()(int32_t x) const { return wrap(0u - bits(x)); }
};
struct Sqrt {
  __device__ float operator()(float x) const { return sqrtf(x); }
};
// 1 / sqrt rather than rsqrtf, whose approximation is further from the cpu's double result.
struct Rsqrt {
  __device__ float operator()(float x) const { return 1.0f / sqrtf(x); }
};
struct Square {
  __device__ float operator()(float x) const { return x * x; }
  __device__ int32_t operator()(int32_t x) const { return wrap(bits(x) * bits(x)); }
};
struct Exp {
  __device__ float operator()(float x) const { return expf(x); }
};
struct Expm1 {
  __device__ float operator()(float x) const { return expm1f(x); }
};
struct Log {
  __device__ float operator()(float x) const { return logf(x); }
};
struct Log1p {
  __device__ float operator()(float x) const { return log1pf(x); }
};
// Math.max(0, x): NaN stays NaN, -0 becomes +0.
struct Relu {
  __device__ float operator()(float x) const { return x > 0 || isnan(x) ? x : 0.0f; }
  __device__ int32_t operator()(int32_t x) const { return x > 0 ? x : 0; }
};
struct Relu6 {
  __device__ float operator()(float x) const { return x > 6.0f ? 6.0f : (x > 0 || isnan(x) ? x : 0.0f); }
};
struct Step {
  float alpha;
  __device__ float operator()(float x) const { return isnan(x) ? x : (x > 0 ? 1.0f : alpha); }
};
// NaN and -0 give 0, as the cpu's comparisons do.
struct Sign {
  template <class T>
  __device__ T operator()(T x) const {
    return x > 0 ? T(1) : (x < 0 ? T(-1) : T(0));
  }
};
struct Reciprocal {
  __device__ float operator()(float x) const { return 1.0f / x; }
};
// exp of a non-positive argument only: no overflow to infinity for large negative x, where the
// cpu's double result is a tiny positive number rather than 0.
struct Sigmoid {
  __device__ float operator()(float x) const {
    if (x >= 0) return 1.0f / (1.0f + expf(-x));
    const float e = expf(x);
    return e / (1.0f + e);
  }
};
struct Tanh {
  __device__ float operator()(float x) const { return tanhf(x); }
};
// tf.nn.softplus' thresholds, where exp(x) or x is softplus(x) to float precision.
struct Softplus {
  __device__ float operator()(float x) const {
    constexpr double threshold = -13.942385152878742;  // log(2^-23) + 2
    if (double(x) < threshold) return expf(x);
    if (double(x) > -threshold) return x;
    return log1pf(expf(x));
  }
};
struct Elu {
  __device__ float operator()(float x) const { return x >= 0 ? x : expm1f(x); }
};
// alpha stays a double: the cpu's product of a double attribute and a float, rounded once to float.
struct LeakyRelu {
  double alpha;
  __device__ float operator()(float x) const { return x < 0 ? static_cast<float>(alpha * x) : x; }
};
struct Floor {
  __device__ float operator()(float x) const { return floorf(x); }
};
struct Ceil {
  __device__ float operator()(float x) const { return ceilf(x); }
};
// Halves to even like rint, except that the cpu's banker's rounding takes -0.5 up to floor + 1 = +0.
struct Round {
  __device__ float operator()(float x) const { return x == -0.5f ? 0.0f : rintf(x); }
};
struct IsNan {
  __device__ int32_t operator()(float x) const { return isnan(x); }
};
struct IsInf {
  __device__ int32_t operator()(float x) const { return isinf(x); }
};
struct IsFinite {
  __device__ int32_t operator()(float x) const { return isfinite(x); }
};
// tfjs' erf is Abramowitz & Stegun 7.1.26 (error ~1e-7, not erff's), evaluated in double like the cpu.
struct Erf {
  __device__ float operator()(float x) const {
    const double v = fabs(double(x));
    const double t = 1.0 / (1.0 + 0.3275911 * v);
    const double poly = ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t;
    const double sign = x > 0 ? 1.0 : (x < 0 ? -1.0 : double(x));  // Math.sign: keeps -0 and NaN
    return static_cast<float>(sign * (1.0 - poly * exp(-v * v)));
  }
};
struct Sin {
  __device__ float operator()(float x) const { return sinf(x); }
};
struct Cos {
  __device__ float operator()(float x) const { return cosf(x); }
};
// The bounds as floats compare like the cpu's doubles: a float between a bound and its float
// rounding is that rounding itself.
struct ClipByValue {
  float lo, hi;
  __device__ float operator()(float x) const { return x > hi ? hi : (x < lo ? lo : x); }
};
struct LogicalNot {
  __device__ int32_t operator()(int32_t x) const { return x == 0; }
};
struct ToFloat {
  __device__ float operator()(int32_t x) const { return static_cast<float>(x); }
};
struct ToInt {
  __device__ int32_t operator()(float x) const { return toInt32(x); }
};
// != 0, so NaN is true.
struct ToBool {
  template <class T>
  __device__ int32_t operator()(T x) const {
    return x != T(0);
  }
};

// ---- select and sums ----

// The cpu takes t where the condition is exactly 1. t and e are moved as words, whatever their dtype.
struct Select {
  template <class C>
  __device__ uint32_t operator()(C condition, uint32_t t, uint32_t e) const {
    return condition == C(1) ? t : e;
  }
};

// AddN: left to right from 0 in the output's type, rounding after every addition as the cpu's
// accumulation in a Float32Array does (int32 wraps).
template <class T>
struct Total;
template <>
struct Total<float> {
  template <class... X>
  __device__ float operator()(X... x) const {
    return (0.0f + ... + x);
  }
};
template <>
struct Total<int32_t> {
  template <class... X>
  __device__ int32_t operator()(X... x) const {
    return wrap((0u + ... + bits(x)));
  }
};

struct Fill {
  uint32_t value;
  __device__ uint32_t operator()() const { return value; }
};

// ---- dispatch ----

// Codes of src/engine/cuda/kernels/eltwise.ts' UNARY table.
enum UnaryCode {
  kAbs, kNeg, kSqrt, kRsqrt, kSquare, kExp, kExpm1, kLog, kLog1p, kRelu, kRelu6, kStep, kSign,
  kReciprocal, kSigmoid, kTanh, kSoftplus, kElu, kLeakyRelu, kFloor, kCeil, kRound, kIsNan, kIsInf,
  kIsFinite, kErf, kSin, kCos, kClipByValue, kLogicalNot, kToFloat, kToInt, kToBool,
};

// Codes of src/engine/cuda/kernels/eltwise.ts' BINARY table.
enum BinaryCode {
  kAdd, kSub, kMul, kRealDiv, kFloorDiv, kMaximum, kMinimum, kPow, kSquaredDifference, kMod, kAtan2,
  kPrelu, kEqual, kNotEqual, kGreater, kGreaterEqual, kLess, kLessEqual, kLogicalAnd, kLogicalOr,
};

[[noreturn]] void unsupported(const char *what, int code, int dtype) {
  throw ArgError(std::string(what) + ": op " + std::to_string(code) + " does not take dtype " + std::to_string(dtype));
}

// Storage bits of eltwiseUnary and eltwiseBinary: which operands of a float32 op are stored as halves.
enum Storage {
  kHalfIn = 1,   // unary: x
  kHalfOut = 2,  // unary: y
  kHalfA = 1,    // binary: a
  kHalfB = 2,    // binary: b
};

struct UnaryCall {
  int code, dtype;
  const void *x;
  void *y;
  size_t n;
  int storage;

  template <class In, class Out, class Op>
  void map(const Op &op) const {
    mapFlat("eltwiseUnary", op, static_cast<Out *>(y), n, FlatOperand<In>{static_cast<const In *>(x), 1});
  }
  template <class In, class Op>
  void as(const Op &op) const {
    map<In, std::invoke_result_t<Op, ValueOf<In>>>(op);
  }
  // A half-stored input; with kHalfOut the results stored as halves, for ops that keep the grid.
  template <bool kKeepsGrid, class Op>
  void halves(const Op &op) const {
    if (dtype != kFloat32) unsupported("eltwiseUnary on halves", code, dtype);
    if (storage == kHalfIn) return as<Half>(op);
    if (kKeepsGrid && storage == (kHalfIn | kHalfOut)) return map<Half, Half>(op);
    throw ArgError("eltwiseUnary: op " + std::to_string(code) + " does not take storage " + std::to_string(storage));
  }
  template <class Op>
  void floats(const Op &op) const {
    if (dtype != kFloat32) unsupported("eltwiseUnary", code, dtype);
    as<float>(op);
  }
  template <class Op>
  void ints(const Op &op) const {
    if (dtype != kInt32) unsupported("eltwiseUnary", code, dtype);
    as<int32_t>(op);
  }
  template <class Op>
  void both(const Op &op) const {
    dtype == kFloat32 ? as<float>(op) : ints(op);
  }
};

// The unary ops of a mixed16 step that read halves: Step's values are x (NaN, itself a half), 1 and
// alpha, which the caller checks is on the grid before asking for half output.
void unaryOnHalves(const UnaryCall &c, double alpha) {
  switch (c.code) {
    case kAbs: return c.halves<true>(Abs{});
    case kNeg: return c.halves<true>(Neg{});
    case kStep: return c.halves<true>(Step{static_cast<float>(alpha)});
    case kSquare: return c.halves<false>(Square{});
    default: throw ArgError("eltwiseUnary: op " + std::to_string(c.code) + " does not read halves");
  }
}

void unary(const UnaryCall &c, double alpha, double beta) {
  if (c.storage != 0) return unaryOnHalves(c, alpha);
  switch (c.code) {
    case kAbs: return c.both(Abs{});
    case kNeg: return c.both(Neg{});
    case kSqrt: return c.floats(Sqrt{});
    case kRsqrt: return c.floats(Rsqrt{});
    case kSquare: return c.both(Square{});
    case kExp: return c.floats(Exp{});
    case kExpm1: return c.floats(Expm1{});
    case kLog: return c.floats(Log{});
    case kLog1p: return c.floats(Log1p{});
    case kRelu: return c.both(Relu{});
    case kRelu6: return c.floats(Relu6{});
    case kStep: return c.floats(Step{static_cast<float>(alpha)});
    case kSign: return c.both(Sign{});
    case kReciprocal: return c.floats(Reciprocal{});
    case kSigmoid: return c.floats(Sigmoid{});
    case kTanh: return c.floats(Tanh{});
    case kSoftplus: return c.floats(Softplus{});
    case kElu: return c.floats(Elu{});
    case kLeakyRelu: return c.floats(LeakyRelu{alpha});
    case kFloor: return c.floats(Floor{});
    case kCeil: return c.floats(Ceil{});
    case kRound: return c.floats(Round{});
    case kIsNan: return c.floats(IsNan{});
    case kIsInf: return c.floats(IsInf{});
    case kIsFinite: return c.floats(IsFinite{});
    case kErf: return c.floats(Erf{});
    case kSin: return c.floats(Sin{});
    case kCos: return c.floats(Cos{});
    case kClipByValue: return c.floats(ClipByValue{static_cast<float>(alpha), static_cast<float>(beta)});
    case kLogicalNot: return c.ints(LogicalNot{});
    case kToFloat: return c.ints(ToFloat{});
    case kToInt: return c.floats(ToInt{});
    case kToBool: return c.both(ToBool{});
    default: throw ArgError("eltwiseUnary: unknown op " + std::to_string(c.code));
  }
}

struct BinaryCall {
  int code, dtype;
  const void *a, *b;
  void *out;
  MapShape shape;
  int aStrides[kMaxRank], bStrides[kMaxRank];
  int storage;

  template <class InA, class InB = InA, class Op>
  void as(const Op &op) const {
    using Out = std::invoke_result_t<Op, ValueOf<InA>, ValueOf<InB>>;
    StridedOperand<InA> sa{static_cast<const InA *>(a), {}};
    StridedOperand<InB> sb{static_cast<const InB *>(b), {}};
    for (int d = 0; d < kMaxRank; d++) sa.strides[d] = aStrides[d], sb.strides[d] = bStrides[d];
    mapStrided("eltwiseBinary", op, static_cast<Out *>(out), shape, sa, sb);
  }
  // One or both inputs stored as halves; the output is float32.
  template <class Op>
  void halves(const Op &op) const {
    if (dtype != kFloat32) unsupported("eltwiseBinary on halves", code, dtype);
    switch (storage) {
      case kHalfA: return as<Half, float>(op);
      case kHalfB: return as<float, Half>(op);
      case kHalfA | kHalfB: return as<Half, Half>(op);
      default: throw ArgError("eltwiseBinary: storage " + std::to_string(storage) + " outside 0..3");
    }
  }
  template <class Op>
  void floats(const Op &op) const {
    if (dtype != kFloat32) unsupported("eltwiseBinary", code, dtype);
    as<float>(op);
  }
  template <class Op>
  void ints(const Op &op) const {
    if (dtype != kInt32) unsupported("eltwiseBinary", code, dtype);
    as<int32_t>(op);
  }
  template <class Op>
  void both(const Op &op) const {
    dtype == kFloat32 ? as<float>(op) : ints(op);
  }
};

// The binary ops of a mixed16 step that read halves: the ReLU gradient's product, gradient sums,
// residual sums, the loss' arithmetic (tf.norm's square is a Pow).
void binaryOnHalves(const BinaryCall &c) {
  switch (c.code) {
    case kAdd: return c.halves(Add{});
    case kSub: return c.halves(Sub{});
    case kMul: return c.halves(Mul{});
    case kRealDiv: return c.halves(RealDiv{});
    case kMaximum: return c.halves(Maximum{});
    case kMinimum: return c.halves(Minimum{});
    case kPow: return c.halves(Pow{});
    default: throw ArgError("eltwiseBinary: op " + std::to_string(c.code) + " does not read halves");
  }
}

void binary(const BinaryCall &c) {
  if (c.storage != 0) return binaryOnHalves(c);
  switch (c.code) {
    case kAdd: return c.both(Add{});
    case kSub: return c.both(Sub{});
    case kMul: return c.both(Mul{});
    case kRealDiv: return c.both(RealDiv{});
    case kFloorDiv: return c.both(FloorDiv{});
    case kMaximum: return c.both(Maximum{});
    case kMinimum: return c.both(Minimum{});
    case kPow: return c.both(Pow{});
    case kSquaredDifference: return c.both(SquaredDifference{});
    case kMod: return c.both(Mod{});
    case kAtan2: return c.floats(Atan2{});
    case kPrelu: return c.floats(Prelu{});
    case kEqual: return c.both(Equal{});
    case kNotEqual: return c.both(NotEqual{});
    case kGreater: return c.both(Greater{});
    case kGreaterEqual: return c.both(GreaterEqual{});
    case kLess: return c.both(Less{});
    case kLessEqual: return c.both(LessEqual{});
    case kLogicalAnd: return c.ints(LogicalAnd{});
    case kLogicalOr: return c.ints(LogicalOr{});
    default: throw ArgError("eltwiseBinary: unknown op " + std::to_string(c.code));
  }
}

// Up to this many inputs per AddN pass; longer sums continue from the output.
constexpr int kMaxAddends = 8;

template <class T, size_t... I>
void addN(T *out, size_t n, const T *const *in, std::index_sequence<I...>) {
  mapFlat("eltwiseAddN", Total<T>{}, out, n, FlatOperand<T>{in[I], 1}...);
}

template <class T, size_t... K>
void addN(T *out, size_t n, const T *const *in, int count, std::index_sequence<K...>) {
  // count - 1 picks the instantiation for that many inputs.
  ((count == int(K) + 1 ? addN(out, n, in, std::make_index_sequence<K + 1>{}) : void()), ...);
}

}  // namespace

// (op, dtype, x, y, n, alpha, beta[, storage]): y[i] = op(x[i]); alpha is Step's and LeakyRelu's
// alpha, alpha and beta ClipByValue's bounds; storage (Storage bits, default 0) which of x and y are
// stored as halves.
SIMTRIP_EXPORT(eltwiseUnary) {
  args.need(7, "eltwiseUnary");
  const UnaryCall call{args.integer(0, "op"), args.integer(1, "dtype"), args.ptr(2, "x"), args.ptr(3, "y"), args.size(4, "n"),
                       args.count > 7 ? args.integer(7, "storage") : 0};
  unary(call, args.number(5, "alpha"), args.number(6, "beta"));
  return undefined(args.env);
}

// (op, dtype, a, b, out, shape: Int32Array, aStrides: Int32Array, bStrides: Int32Array[, storage]):
// out (row-major over shape) = op(a, b) with each input read through its strides (0 where it is
// broadcast); storage (Storage bits, default 0) which of a and b are stored as halves.
SIMTRIP_EXPORT(eltwiseBinary) {
  args.need(8, "eltwiseBinary");
  const I32View shape = args.anyInts(5, "shape");
  const I32View aStrides = args.ints(6, "aStrides", shape.length);
  const I32View bStrides = args.ints(7, "bStrides", shape.length);
  if (shape.length < 1 || shape.length > static_cast<size_t>(kMaxRank)) throw ArgError("eltwiseBinary: rank outside 1.." + std::to_string(kMaxRank));
  BinaryCall call{args.integer(0, "op"), args.integer(1, "dtype"), args.ptr(2, "a"), args.ptr(3, "b"), args.ptr(4, "out"), {}, {}, {},
                  args.count > 8 ? args.integer(8, "storage") : 0};
  const int rank = static_cast<int>(shape.length);
  call.shape.rank = rank;
  for (int d = 0; d < kMaxRank; d++) {
    const int k = d - (kMaxRank - rank);
    call.shape.dims[d] = k >= 0 ? shape.data[k] : 1;
    call.aStrides[d] = k >= 0 ? aStrides.data[k] : 0;
    call.bStrides[d] = k >= 0 ? bStrides.data[k] : 0;
  }
  binary(call);
  return undefined(args.env);
}

// (conditionDtype, condition, t, e, out, n): out[i] = condition[i] == 1 ? t[i] : e[i] for 4-byte t, e.
SIMTRIP_EXPORT(eltwiseSelect) {
  args.need(6, "eltwiseSelect");
  const int conditionDtype = args.integer(0, "conditionDtype");
  const auto t = FlatOperand<uint32_t>{args.ptr<const uint32_t>(2, "t"), 1};
  const auto e = FlatOperand<uint32_t>{args.ptr<const uint32_t>(3, "e"), 1};
  uint32_t *out = args.ptr<uint32_t>(4, "out");
  const size_t n = args.size(5, "n");
  if (conditionDtype == kFloat32) {
    mapFlat("eltwiseSelect", Select{}, out, n, FlatOperand<float>{args.ptr<const float>(1, "condition"), 1}, t, e);
  } else {
    mapFlat("eltwiseSelect", Select{}, out, n, FlatOperand<int32_t>{args.ptr<const int32_t>(1, "condition"), 1}, t, e);
  }
  return undefined(args.env);
}

// (dst, n, bits): n 4-byte words of dst set to bits (an int32: a float's bit pattern for float32).
SIMTRIP_EXPORT(eltwiseFill) {
  args.need(3, "eltwiseFill");
  mapFlat("eltwiseFill", Fill{static_cast<uint32_t>(args.integer(2, "bits"))}, args.ptr<uint32_t>(0, "dst"), args.size(1, "n"));
  return undefined(args.env);
}

// (dtype, out, n, in0, ..., in{k-1}) with 1 <= k <= 8: out = in0 + ... + in{k-1}. in0 may be out
// itself, which is how a longer sum continues.
SIMTRIP_EXPORT(eltwiseAddN) {
  args.need(4, "eltwiseAddN");
  const int dtype = args.integer(0, "dtype");
  void *out = args.ptr(1, "out");
  const size_t n = args.size(2, "n");
  const int count = static_cast<int>(args.count) - 3;
  if (count > kMaxAddends) throw ArgError("eltwiseAddN: more than " + std::to_string(kMaxAddends) + " inputs");
  const void *in[kMaxAddends] = {};
  for (int k = 0; k < count; k++) in[k] = args.ptr(3 + k, "input");
  if (dtype == kFloat32) {
    addN(static_cast<float *>(out), n, reinterpret_cast<const float *const *>(in), count, std::make_index_sequence<kMaxAddends>{});
  } else {
    addN(static_cast<int32_t *>(out), n, reinterpret_cast<const int32_t *const *>(in), count, std::make_index_sequence<kMaxAddends>{});
  }
  return undefined(args.env);
}

}  // namespace simtrip::cuda
