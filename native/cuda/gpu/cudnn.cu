// dnn.h's convolutions on cuDNN 9's convolution API: NHWC activations, KRSC filters, fp32 or fp16.
//
// Each (shape, direction, storage, math mode) gets a plan once: its descriptors, and every algorithm
// that cudnnFind*AlgorithmEx measured on the real buffers (as torch.backends.cudnn.benchmark does),
// fastest first. Training repeats a handful of shapes, so the search, which waits for the GPU, runs
// only in the first steps; afterwards a call is a lookup and one library launch with the fastest
// algorithm whose workspace the pool can give now (conv_algos.h), falling back to slower ones that
// need less instead of running out of memory. A search saved by an earlier process (loadConvPlans:
// check:cuda, the benchmarks and the end-to-end run of one device script) is reused as it is.
//
// Math: Exact searches and runs with CUDNN_FMA_MATH (no tensor cores, so no TF32); Tf32 searches with
// CUDNN_DEFAULT_MATH, which lets cuDNN use TF32 tensor cores for fp32, and runs with the math type of
// the algorithm it picked.
//
// Halves (mixed16) run in cuDNN's "pseudo-half" configuration: x, w and y CUDNN_DATA_HALF, the
// convolution's compute type CUDNN_DATA_FLOAT, so the exact fp16 products are accumulated in fp32 and
// the result is rounded to half once, when it is written; the search allows CUDNN_TENSOR_OP_MATH
// (fp16 tensor cores) whatever the fp32 math mode, and the plan runs with the algorithm's math type.
#include <cstring>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "../conv_algos.h"
#include "../dnn.h"
#include "../runtime.h"
#include "dynload.h"

namespace simtrip::cuda {

namespace {

using Direction = ConvDirection;

void check(cudnnStatus_t status, const char *call, const ConvShape &shape, const std::string &detail = "") {
  if (status != CUDNN_STATUS_SUCCESS) {
    throw DeviceError(std::string(call) + " (" + shape.describe() + detail + "): " + lib::cudnn.cudnnGetErrorString(status) + " (cudnnStatus_t " +
                      std::to_string(static_cast<int>(status)) + ")");
  }
}

cudnnHandle_t createHandle() {
  if (!lib::cudnn.cudnnCreate) throw DeviceError("cuDNN is not loaded (init() first)");
  cudnnHandle_t h = nullptr;
  const cudnnStatus_t created = lib::cudnn.cudnnCreate(&h);
  if (created != CUDNN_STATUS_SUCCESS) throw DeviceError(std::string("cudnnCreate: ") + lib::cudnn.cudnnGetErrorString(created));
  const cudnnStatus_t bound = lib::cudnn.cudnnSetStream(h, stream());
  if (bound != CUDNN_STATUS_SUCCESS) throw DeviceError(std::string("cudnnSetStream: ") + lib::cudnn.cudnnGetErrorString(bound));
  return h;
}

cudnnHandle_t handle() {
  static const cudnnHandle_t h = createHandle();
  return h;
}

// Whether a call may use tensor cores: always on halves, on float32 only with TF32 allowed.
bool tensorCores(Storage storage, MathMode math) { return storage == Storage::Half || math == MathMode::Tf32; }

cudnnDataType_t dataType(Storage storage) { return storage == Storage::Half ? CUDNN_DATA_HALF : CUDNN_DATA_FLOAT; }

// One convolution's descriptors and its search's results.
struct Plan {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  ConvChoices *choices = nullptr;  // in conv_algos.h's book
  bool tensorOps = false;          // the math type follows the algorithm run
  int appliedMath = -1;            // the math type the descriptor has now

  Plan() = default;
  Plan(const Plan &) = delete;
  Plan &operator=(const Plan &) = delete;
  ~Plan() {
    if (x) lib::cudnn.cudnnDestroyTensorDescriptor(x);
    if (y) lib::cudnn.cudnnDestroyTensorDescriptor(y);
    if (w) lib::cudnn.cudnnDestroyFilterDescriptor(w);
    if (conv) lib::cudnn.cudnnDestroyConvolutionDescriptor(conv);
  }
};

void describeInto(Plan &plan, const ConvShape &s, Storage storage, cudnnMathType_t math) {
  const cudnnDataType_t type = dataType(storage);
  check(lib::cudnn.cudnnCreateTensorDescriptor(&plan.x), "cudnnCreateTensorDescriptor", s);
  check(lib::cudnn.cudnnCreateTensorDescriptor(&plan.y), "cudnnCreateTensorDescriptor", s);
  check(lib::cudnn.cudnnCreateFilterDescriptor(&plan.w), "cudnnCreateFilterDescriptor", s);
  check(lib::cudnn.cudnnCreateConvolutionDescriptor(&plan.conv), "cudnnCreateConvolutionDescriptor", s);
  check(lib::cudnn.cudnnSetTensor4dDescriptor(plan.x, CUDNN_TENSOR_NHWC, type, s.n, s.c, s.h, s.w), "cudnnSetTensor4dDescriptor (x)", s);
  check(lib::cudnn.cudnnSetTensor4dDescriptor(plan.y, CUDNN_TENSOR_NHWC, type, s.n, s.k, s.outH, s.outW), "cudnnSetTensor4dDescriptor (y)", s);
  check(lib::cudnn.cudnnSetFilter4dDescriptor(plan.w, type, CUDNN_TENSOR_NHWC, s.k, s.c, s.r, s.s), "cudnnSetFilter4dDescriptor", s);
  // The compute type is float32 for both storages: fp16 data accumulate in fp32.
  check(lib::cudnn.cudnnSetConvolution2dDescriptor(plan.conv, s.padH, s.padW, s.strideH, s.strideW, s.dilationH, s.dilationW,
                                                   CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT),
        "cudnnSetConvolution2dDescriptor", s);
  check(lib::cudnn.cudnnSetConvolutionMathType(plan.conv, math), "cudnnSetConvolutionMathType", s);
}

// The algorithms that compute in a transformed domain (FFT, Winograd) rather than summing the exact
// products. Their transforms add round-off of their own, and cuDNN does not document the precision of
// their intermediates on fp16 data, while mixed16 promises the emulation's numbers up to the float32
// summation order; so halves never use them (fp16 implicit GEMM on tensor cores is the fast choice
// there anyway).
bool transformed(cudnnConvolutionFwdAlgo_t a) {
  return a == CUDNN_CONVOLUTION_FWD_ALGO_FFT || a == CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING || a == CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD ||
         a == CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED;
}
bool transformed(cudnnConvolutionBwdDataAlgo_t a) {
  return a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT || a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT_TILING ||
         a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD || a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD_NONFUSED;
}
bool transformed(cudnnConvolutionBwdFilterAlgo_t a) {
  return a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT || a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT_TILING ||
         a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD || a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD_NONFUSED;
}

// The usable results, fastest first (cuDNN sorts them by time): without tensor cores allowed, never a
// tensor-core one; on halves, never a transformed one; none that needs more than the search had.
template <class Perf>
std::vector<ConvAlgo> usable(const std::vector<Perf> &perfs, int returned, Storage storage, bool tensorOps, size_t limit) {
  std::vector<ConvAlgo> out;
  for (int i = 0; i < returned; i++) {
    const Perf &p = perfs[i];
    if (p.status != CUDNN_STATUS_SUCCESS || p.memory > limit) continue;
    if (!tensorOps && (p.mathType == CUDNN_TENSOR_OP_MATH || p.mathType == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION)) continue;
    if (storage == Storage::Half && transformed(p.algo)) continue;
    out.push_back(ConvAlgo{static_cast<int>(p.algo), static_cast<int>(p.mathType), p.memory, p.time});
  }
  return out;
}

cudnnMathType_t searchMath(Storage storage, MathMode math) {
  if (storage == Storage::Half) return CUDNN_TENSOR_OP_MATH;
  return math == MathMode::Tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH;
}

// Searches with the call's own buffers: the search writes the output, which the call then overwrites.
ConvChoices search(Direction d, const Plan &plan, const ConvShape &s, Storage storage, bool tensorOps, const void *in, const void *other,
                   void *out) {
  const std::unique_ptr<Scratch> ws = searchWorkspace();
  cudnnHandle_t h = handle();
  // The search waits for its own timings anyway; draining the stream first also settles the
  // stream-ordered allocations of the buffers it runs on, whatever streams cuDNN times with.
  synchronize();
  ConvChoices c;
  c.searchWorkspace = ws->bytes();
  int max = 0, returned = 0;
  switch (d) {
    case Direction::Forward: {
      check(lib::cudnn.cudnnGetConvolutionForwardAlgorithmMaxCount(h, &max), "cudnnGetConvolutionForwardAlgorithmMaxCount", s);
      std::vector<cudnnConvolutionFwdAlgoPerf_t> perfs(max);
      check(lib::cudnn.cudnnFindConvolutionForwardAlgorithmEx(h, plan.x, in, plan.w, other, plan.conv, plan.y, out, max, &returned, perfs.data(),
                                                              ws->as<void>(), ws->bytes()),
            "cudnnFindConvolutionForwardAlgorithmEx", s);
      c.ranked = usable(perfs, returned, storage, tensorOps, ws->bytes());
      break;
    }
    case Direction::BackwardData: {
      check(lib::cudnn.cudnnGetConvolutionBackwardDataAlgorithmMaxCount(h, &max), "cudnnGetConvolutionBackwardDataAlgorithmMaxCount", s);
      std::vector<cudnnConvolutionBwdDataAlgoPerf_t> perfs(max);
      check(lib::cudnn.cudnnFindConvolutionBackwardDataAlgorithmEx(h, plan.w, other, plan.y, in, plan.conv, plan.x, out, max, &returned,
                                                                   perfs.data(), ws->as<void>(), ws->bytes()),
            "cudnnFindConvolutionBackwardDataAlgorithmEx", s);
      c.ranked = usable(perfs, returned, storage, tensorOps, ws->bytes());
      break;
    }
    case Direction::BackwardFilter: {
      check(lib::cudnn.cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(h, &max), "cudnnGetConvolutionBackwardFilterAlgorithmMaxCount", s);
      std::vector<cudnnConvolutionBwdFilterAlgoPerf_t> perfs(max);
      check(lib::cudnn.cudnnFindConvolutionBackwardFilterAlgorithmEx(h, plan.x, in, plan.y, other, plan.conv, plan.w, out, max, &returned,
                                                                     perfs.data(), ws->as<void>(), ws->bytes()),
            "cudnnFindConvolutionBackwardFilterAlgorithmEx", s);
      c.ranked = usable(perfs, returned, storage, tensorOps, ws->bytes());
      break;
    }
  }
  if (c.ranked.empty()) {
    throw DeviceError(std::string("cuDNN has no ") + nameOf(d) + " algorithm for " + s.describe() + (storage == Storage::Half ? " on halves" : "") +
                      " within " + std::to_string(c.searchWorkspace >> 20) + " MB of workspace");
  }
  return c;
}

std::unique_ptr<Plan> makePlan(Direction d, const ConvShape &s, Storage storage, MathMode math, const void *in, const void *other, void *out) {
  auto plan = std::make_unique<Plan>();
  plan->tensorOps = tensorCores(storage, math);
  describeInto(*plan, s, storage, searchMath(storage, math));
  plan->appliedMath = static_cast<int>(searchMath(storage, math));
  const std::string key = convKey(d, s, storage, math);
  plan->choices = findChoices(key);
  if (!plan->choices) plan->choices = &recordChoices(key, search(d, *plan, s, storage, plan->tensorOps, in, other, out));
  return plan;
}

// in / other / out by direction: forward (x, w, y), backward data (dy, w, dx), backward filter (x, dy, dw).
Plan &planFor(Direction d, const ConvShape &s, Storage storage, MathMode math, const void *in, const void *other, void *out) {
  // Halves search the same way whatever the fp32 math mode: one plan for both.
  if (storage == Storage::Half) math = MathMode::Exact;
  static std::unordered_map<std::string, std::unique_ptr<Plan>> plans;
  const std::string key = convKey(d, s, storage, math);
  auto it = plans.find(key);
  if (it != plans.end()) return *it->second;
  // Training uses a handful of shapes; the bound only guards against a caller that never repeats one.
  if (plans.size() >= 1024) plans.clear();
  return *plans.emplace(key, makePlan(d, s, storage, math, in, other, out)).first->second;
}

// " algo 1, math type 2, workspace 123 bytes": what a failed call ran, for its error.
std::string detailOf(const ConvAlgo &a, size_t workspace) {
  return ", algo " + std::to_string(a.algo) + ", math type " + std::to_string(a.mathType) + ", workspace " + std::to_string(workspace) + " bytes";
}

// Runs `call(algo, workspace, bytes)` with the plan's first algorithm whose workspace fits now, the
// descriptor's math type set to that algorithm's when tensor cores are allowed.
template <class Call>
void runPlan(Plan &p, Direction d, const ConvShape &s, Call call) {
  runRanked(*p.choices, std::string("cuDNN ") + nameOf(d) + " (" + s.describe() + ")", [&](const ConvAlgo &a, void *ws, size_t bytes) {
    if (p.tensorOps && a.mathType != p.appliedMath) {
      check(lib::cudnn.cudnnSetConvolutionMathType(p.conv, static_cast<cudnnMathType_t>(a.mathType)), "cudnnSetConvolutionMathType", s);
      p.appliedMath = a.mathType;
    }
    call(a, ws, bytes);
  });
}

// alpha and beta are float32 for both storages (the compute type's).
const float kOne = 1.f, kZero = 0.f;

}  // namespace

void convForward(const ConvShape &s, const void *x, const void *w, void *y, Storage storage, MathMode math) {
  Plan &p = planFor(Direction::Forward, s, storage, math, x, w, y);
  runPlan(p, Direction::Forward, s, [&](const ConvAlgo &a, void *ws, size_t bytes) {
    check(lib::cudnn.cudnnConvolutionForward(handle(), &kOne, p.x, x, p.w, w, p.conv, static_cast<cudnnConvolutionFwdAlgo_t>(a.algo), ws, bytes,
                                             &kZero, p.y, y),
          "cudnnConvolutionForward", s, detailOf(a, bytes));
  });
}

void convBackwardData(const ConvShape &s, const void *dy, const void *w, void *dx, Storage storage, MathMode math) {
  Plan &p = planFor(Direction::BackwardData, s, storage, math, dy, w, dx);
  runPlan(p, Direction::BackwardData, s, [&](const ConvAlgo &a, void *ws, size_t bytes) {
    check(lib::cudnn.cudnnConvolutionBackwardData(handle(), &kOne, p.w, w, p.y, dy, p.conv, static_cast<cudnnConvolutionBwdDataAlgo_t>(a.algo), ws,
                                                  bytes, &kZero, p.x, dx),
          "cudnnConvolutionBackwardData", s, detailOf(a, bytes));
  });
}

void convBackwardFilter(const ConvShape &s, const void *x, const void *dy, void *dw, Storage storage, MathMode math) {
  Plan &p = planFor(Direction::BackwardFilter, s, storage, math, x, dy, dw);
  runPlan(p, Direction::BackwardFilter, s, [&](const ConvAlgo &a, void *ws, size_t bytes) {
    check(lib::cudnn.cudnnConvolutionBackwardFilter(handle(), &kOne, p.x, x, p.y, dy, p.conv, static_cast<cudnnConvolutionBwdFilterAlgo_t>(a.algo),
                                                    ws, bytes, &kZero, p.w, dw),
          "cudnnConvolutionBackwardFilter", s, detailOf(a, bytes));
  });
}

}  // namespace simtrip::cuda
