// dnn.h's convolutions on cuDNN 9's convolution API: NHWC activations, KRSC filters, fp32 or fp16.
//
// Each (shape, direction, storage, math mode) gets a plan once: its descriptors and the algorithm that
// cudnnFind*AlgorithmEx measured fastest on the real buffers (as torch.backends.cudnn.benchmark does).
// Training repeats a handful of shapes, so the search, which waits for the GPU, runs only in the first
// steps; afterwards a call is a lookup and one library launch, with its workspace from the stream's pool.
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

#include "../dnn.h"
#include "../runtime.h"
#include "dynload.h"

namespace simtrip::cuda {

namespace {

enum class Direction { Forward, BackwardData, BackwardFilter };

const char *nameOf(Direction d) {
  switch (d) {
    case Direction::Forward:
      return "forward";
    case Direction::BackwardData:
      return "backward data";
    default:
      return "backward filter";
  }
}

void check(cudnnStatus_t status, const char *call, const ConvShape &shape) {
  if (status != CUDNN_STATUS_SUCCESS) throw DeviceError(std::string(call) + " (" + shape.describe() + "): " + lib::cudnn.cudnnGetErrorString(status));
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

// The most workspace a search offers: enough for the FFT and Winograd algorithms at ResNet sizes,
// small next to an 80 GB device. Below the least, the search gets none (implicit GEMM needs none).
constexpr size_t kSearchWorkspace = size_t(1) << 30;
constexpr size_t kLeastSearchWorkspace = size_t(1) << 20;

// Whether a call may use tensor cores: always on halves, on float32 only with TF32 allowed.
bool tensorCores(Storage storage, MathMode math) { return storage == Storage::Half || math == MathMode::Tf32; }

cudnnDataType_t dataType(Storage storage) { return storage == Storage::Half ? CUDNN_DATA_HALF : CUDNN_DATA_FLOAT; }

// One convolution's descriptors and chosen algorithm.
struct Plan {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  int algo = 0;  // a cudnnConvolution{Fwd,BwdData,BwdFilter}Algo_t, by direction
  size_t workspace = 0;

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

// The workspace a search may use: as much as kSearchWorkspace, less when the device is short of it.
std::unique_ptr<Scratch> searchWorkspace() {
  for (size_t bytes = kSearchWorkspace; bytes >= kLeastSearchWorkspace; bytes /= 4) {
    try {
      return std::make_unique<Scratch>(bytes);
    } catch (const OutOfMemory &) {
      // try a quarter of it
    }
  }
  return std::make_unique<Scratch>(0);
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

// The fastest usable result (cuDNN sorts them by time); without tensor cores allowed, never a
// tensor-core one; on halves, never a transformed one.
template <class Perf>
const Perf &fastest(const std::vector<Perf> &perfs, int returned, Storage storage, bool tensorOps, size_t limit, const ConvShape &s,
                    Direction d) {
  for (int i = 0; i < returned; i++) {
    const Perf &p = perfs[i];
    if (p.status != CUDNN_STATUS_SUCCESS || p.memory > limit) continue;
    if (!tensorOps && (p.mathType == CUDNN_TENSOR_OP_MATH || p.mathType == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION)) continue;
    if (storage == Storage::Half && transformed(p.algo)) continue;
    return p;
  }
  throw DeviceError(std::string("cuDNN has no ") + nameOf(d) + " algorithm for " + s.describe() + (storage == Storage::Half ? " on halves" : "") +
                    " within " + std::to_string(limit >> 20) + " MB of workspace");
}

template <class Perf>
void adopt(Plan &plan, const Perf &perf, bool tensorOps, const ConvShape &s) {
  plan.algo = static_cast<int>(perf.algo);
  plan.workspace = perf.memory;
  if (tensorOps) check(lib::cudnn.cudnnSetConvolutionMathType(plan.conv, perf.mathType), "cudnnSetConvolutionMathType", s);
}

cudnnMathType_t searchMath(Storage storage, MathMode math) {
  if (storage == Storage::Half) return CUDNN_TENSOR_OP_MATH;
  return math == MathMode::Tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH;
}

// Searches with the call's own buffers: the search writes the output, which the call then overwrites.
std::unique_ptr<Plan> makePlan(Direction d, const ConvShape &s, Storage storage, MathMode math, const void *in, const void *other, void *out) {
  const bool tensorOps = tensorCores(storage, math);
  auto plan = std::make_unique<Plan>();
  describeInto(*plan, s, storage, searchMath(storage, math));
  const std::unique_ptr<Scratch> ws = searchWorkspace();
  cudnnHandle_t h = handle();
  // The search waits for its own timings anyway; draining the stream first also settles the
  // stream-ordered allocations of the buffers it runs on, whatever streams cuDNN times with.
  synchronize();
  int max = 0, returned = 0;
  switch (d) {
    case Direction::Forward: {
      check(lib::cudnn.cudnnGetConvolutionForwardAlgorithmMaxCount(h, &max), "cudnnGetConvolutionForwardAlgorithmMaxCount", s);
      std::vector<cudnnConvolutionFwdAlgoPerf_t> perfs(max);
      check(lib::cudnn.cudnnFindConvolutionForwardAlgorithmEx(h, plan->x, in, plan->w, other, plan->conv, plan->y, out, max, &returned,
                                                              perfs.data(), ws->as<void>(), ws->bytes()),
            "cudnnFindConvolutionForwardAlgorithmEx", s);
      adopt(*plan, fastest(perfs, returned, storage, tensorOps, ws->bytes(), s, d), tensorOps, s);
      break;
    }
    case Direction::BackwardData: {
      check(lib::cudnn.cudnnGetConvolutionBackwardDataAlgorithmMaxCount(h, &max), "cudnnGetConvolutionBackwardDataAlgorithmMaxCount", s);
      std::vector<cudnnConvolutionBwdDataAlgoPerf_t> perfs(max);
      check(lib::cudnn.cudnnFindConvolutionBackwardDataAlgorithmEx(h, plan->w, other, plan->y, in, plan->conv, plan->x, out, max, &returned,
                                                                   perfs.data(), ws->as<void>(), ws->bytes()),
            "cudnnFindConvolutionBackwardDataAlgorithmEx", s);
      adopt(*plan, fastest(perfs, returned, storage, tensorOps, ws->bytes(), s, d), tensorOps, s);
      break;
    }
    case Direction::BackwardFilter: {
      check(lib::cudnn.cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(h, &max), "cudnnGetConvolutionBackwardFilterAlgorithmMaxCount", s);
      std::vector<cudnnConvolutionBwdFilterAlgoPerf_t> perfs(max);
      check(lib::cudnn.cudnnFindConvolutionBackwardFilterAlgorithmEx(h, plan->x, in, plan->y, other, plan->conv, plan->w, out, max,
                                                                     &returned, perfs.data(), ws->as<void>(), ws->bytes()),
            "cudnnFindConvolutionBackwardFilterAlgorithmEx", s);
      adopt(*plan, fastest(perfs, returned, storage, tensorOps, ws->bytes(), s, d), tensorOps, s);
      break;
    }
  }
  return plan;
}

// in / other / out by direction: forward (x, w, y), backward data (dy, w, dx), backward filter (x, dy, dw).
const Plan &planFor(Direction d, const ConvShape &s, Storage storage, MathMode math, const void *in, const void *other, void *out) {
  // Halves search the same way whatever the fp32 math mode: one plan for both.
  if (storage == Storage::Half) math = MathMode::Exact;
  static std::unordered_map<std::string, std::unique_ptr<Plan>> plans;
  std::string key(sizeof s + 3, '\0');
  std::memcpy(&key[0], &s, sizeof s);
  key[sizeof s] = static_cast<char>(d);
  key[sizeof s + 1] = static_cast<char>(math);
  key[sizeof s + 2] = static_cast<char>(storage);
  auto it = plans.find(key);
  if (it != plans.end()) return *it->second;
  // Training uses a handful of shapes; the bound only guards against a caller that never repeats one.
  if (plans.size() >= 1024) plans.clear();
  return *plans.emplace(key, makePlan(d, s, storage, math, in, other, out)).first->second;
}

// alpha and beta are float32 for both storages (the compute type's).
const float kOne = 1.f, kZero = 0.f;

}  // namespace

void convForward(const ConvShape &s, const void *x, const void *w, void *y, Storage storage, MathMode math) {
  const Plan &p = planFor(Direction::Forward, s, storage, math, x, w, y);
  Scratch ws(p.workspace);
  check(lib::cudnn.cudnnConvolutionForward(handle(), &kOne, p.x, x, p.w, w, p.conv, static_cast<cudnnConvolutionFwdAlgo_t>(p.algo),
                                           ws.as<void>(), p.workspace, &kZero, p.y, y),
        "cudnnConvolutionForward", s);
}

void convBackwardData(const ConvShape &s, const void *dy, const void *w, void *dx, Storage storage, MathMode math) {
  const Plan &p = planFor(Direction::BackwardData, s, storage, math, dy, w, dx);
  Scratch ws(p.workspace);
  check(lib::cudnn.cudnnConvolutionBackwardData(handle(), &kOne, p.w, w, p.y, dy, p.conv, static_cast<cudnnConvolutionBwdDataAlgo_t>(p.algo),
                                                ws.as<void>(), p.workspace, &kZero, p.x, dx),
        "cudnnConvolutionBackwardData", s);
}

void convBackwardFilter(const ConvShape &s, const void *x, const void *dy, void *dw, Storage storage, MathMode math) {
  const Plan &p = planFor(Direction::BackwardFilter, s, storage, math, x, dy, dw);
  Scratch ws(p.workspace);
  check(lib::cudnn.cudnnConvolutionBackwardFilter(handle(), &kOne, p.x, x, p.y, dy, p.conv,
                                                  static_cast<cudnnConvolutionBwdFilterAlgo_t>(p.algo), ws.as<void>(), p.workspace, &kZero,
                                                  p.w, dw),
        "cudnnConvolutionBackwardFilter", s);
}

}  // namespace simtrip::cuda
