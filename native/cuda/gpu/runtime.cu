// The device runtime on CUDA: one non-blocking stream, the device's stream-ordered memory pool
// (cudaMallocAsync) kept warm like PyTorch's caching allocator, and pinned staging for uploads that
// never waits for the GPU: a training step uploads its batch and then dozens of small constants
// (tfjs makes a tensor of every scalar in an expression) between kernels, and an upload that waited
// for its buffer's previous copy would wait for every kernel queued before that copy.
#include <algorithm>
#include <cstring>
#include <vector>

#include "../allocations.h"
#include "../runtime.h"

namespace simtrip::cuda {

namespace {

bool gReady = false;
DeviceInfo gInfo;
cudaStream_t gStream = nullptr;
cudaMemPool_t gPool = nullptr;
AllocationBook gBook;

// A pinned buffer an upload is copied through, free again once its copy has run (its event).
struct Staging {
  void *host = nullptr;
  size_t bytes = 0;
  cudaEvent_t done = nullptr;
};
std::vector<Staging> gStaging;

std::vector<cudaEvent_t> gEvents;
std::vector<int> gFreeEvents;

void check(cudaError_t e, const char *what) {
  if (e != cudaSuccess) throw DeviceError(std::string(what) + ": " + cudaGetErrorString(e));
}

[[noreturn]] void outOfMemory(size_t bytes) {
  (void)cudaGetLastError();  // an allocation failure is not sticky; clear it for the next call
  size_t freeBytes = 0, total = 0;
  cudaMemGetInfo(&freeBytes, &total);
  throw OutOfMemory(bytes, freeBytes, total);
}

}  // namespace

DeviceInfo init(const InitOptions &options) {
  if (gReady) return gInfo;
  int count = 0;
  check(cudaGetDeviceCount(&count), "no usable CUDA device");
  if (count == 0) throw DeviceError("no CUDA device found");
  if (options.device < 0 || options.device >= count) {
    throw DeviceError("device " + std::to_string(options.device) + " requested, " + std::to_string(count) + " present");
  }
  check(cudaSetDevice(options.device), "cudaSetDevice");
  cudaDeviceProp p;
  check(cudaGetDeviceProperties(&p, options.device), "cudaGetDeviceProperties");
  int pools = 0;
  check(cudaDeviceGetAttribute(&pools, cudaDevAttrMemoryPoolsSupported, options.device), "cudaDeviceGetAttribute");
  if (!pools) throw DeviceError("the driver has no stream-ordered allocator (cudaMallocAsync); update the NVIDIA driver");
  check(cudaDeviceGetDefaultMemPool(&gPool, options.device), "cudaDeviceGetDefaultMemPool");
  // Keep freed blocks for reuse instead of returning them to the driver at every synchronisation.
  uint64_t threshold = UINT64_MAX;
  check(cudaMemPoolSetAttribute(gPool, cudaMemPoolAttrReleaseThreshold, &threshold), "cudaMemPoolSetAttribute");
  check(cudaStreamCreateWithFlags(&gStream, cudaStreamNonBlocking), "cudaStreamCreate");
  gInfo.name = p.name;
  gInfo.ccMajor = p.major;
  gInfo.ccMinor = p.minor;
  gInfo.smCount = p.multiProcessorCount;
  gInfo.totalBytes = p.totalGlobalMem;
  cudaDriverGetVersion(&gInfo.driverVersion);
  cudaRuntimeGetVersion(&gInfo.runtimeVersion);
  gReady = true;
  return gInfo;
}

bool ready() { return gReady; }

const DeviceInfo &device() { return gInfo; }

cudaStream_t stream() { return gStream; }

void *alloc(size_t bytes) {
  if (bytes == 0) return nullptr;
  void *p = nullptr;
  cudaError_t e = cudaMallocFromPoolAsync(&p, bytes, gPool, gStream);
  if (e == cudaErrorMemoryAllocation) {
    // The pool may hold enough in blocks of the wrong sizes: hand them back to the driver, retry once.
    (void)cudaGetLastError();
    check(cudaStreamSynchronize(gStream), "cudaStreamSynchronize");
    check(cudaMemPoolTrimTo(gPool, 0), "cudaMemPoolTrimTo");
    e = cudaMallocFromPoolAsync(&p, bytes, gPool, gStream);
    if (e == cudaErrorMemoryAllocation) outOfMemory(bytes);
  }
  check(e, "cudaMallocAsync");
  gBook.add(p, bytes);
  return p;
}

void release(void *p) {
  if (!p) return;
  gBook.remove(p);
  check(cudaFreeAsync(p, gStream), "cudaFreeAsync");
}

// The smallest staging buffer of at least `bytes` whose last copy has run, or a new one (sizes are
// powers of two from 4 KiB, so buffers are reused across steps; as many exist as uploads are in flight).
Staging &freeStaging(size_t bytes) {
  Staging *best = nullptr;
  for (Staging &s : gStaging) {
    if (s.bytes < bytes || (best && s.bytes >= best->bytes)) continue;
    const cudaError_t e = cudaEventQuery(s.done);
    if (e == cudaErrorNotReady) continue;
    check(e, "a GPU kernel failed");
    best = &s;
  }
  if (best) return *best;
  Staging s;
  s.bytes = 4096;
  while (s.bytes < bytes) s.bytes *= 2;
  check(cudaMallocHost(&s.host, s.bytes), "cudaMallocHost");
  check(cudaEventCreateWithFlags(&s.done, cudaEventDisableTiming), "cudaEventCreate");
  gStaging.push_back(s);
  return gStaging.back();
}

void upload(void *dst, const void *src, size_t bytes) {
  if (!bytes) return;
  Staging &s = freeStaging(bytes);
  std::memcpy(s.host, src, bytes);
  check(cudaMemcpyAsync(dst, s.host, bytes, cudaMemcpyHostToDevice, gStream), "cudaMemcpyAsync (upload)");
  check(cudaEventRecord(s.done, gStream), "cudaEventRecord");
}

void download(void *dst, const void *src, size_t bytes) {
  if (!bytes) return;
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, gStream), "cudaMemcpyAsync (download)");
  // Also reports any earlier kernel's failure, which surfaces at the first synchronisation.
  check(cudaStreamSynchronize(gStream), "a GPU kernel failed before this read");
}

void copy(void *dst, const void *src, size_t bytes) {
  if (bytes) check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, gStream), "cudaMemcpyAsync (copy)");
}

void zero(void *dst, size_t bytes) {
  if (bytes) check(cudaMemsetAsync(dst, 0, bytes, gStream), "cudaMemsetAsync");
}

void synchronize() { check(cudaStreamSynchronize(gStream), "a GPU kernel failed"); }

int recordEvent() {
  int id;
  if (!gFreeEvents.empty()) {
    id = gFreeEvents.back();
    gFreeEvents.pop_back();
  } else {
    cudaEvent_t e;
    check(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "cudaEventCreate");
    gEvents.push_back(e);
    id = static_cast<int>(gEvents.size()) - 1;
  }
  check(cudaEventRecord(gEvents[id], gStream), "cudaEventRecord");
  return id;
}

bool eventDone(int event) {
  const cudaError_t e = cudaEventQuery(gEvents.at(event));
  if (e == cudaErrorNotReady) return false;
  check(e, "a GPU kernel failed");
  return true;
}

void releaseEvent(int event) { gFreeEvents.push_back(event); }

MemoryStats memory() {
  MemoryStats s;
  s.inUse = gBook.inUse();
  s.peak = gBook.peak();
  uint64_t v = 0;
  if (cudaMemPoolGetAttribute(gPool, cudaMemPoolAttrReservedMemCurrent, &v) == cudaSuccess) s.reserved = v;
  if (cudaMemPoolGetAttribute(gPool, cudaMemPoolAttrReservedMemHigh, &v) == cudaSuccess) s.reservedPeak = v;
  cudaMemGetInfo(&s.freeBytes, &s.totalBytes);
  return s;
}

void resetPeak() {
  gBook.resetPeak();
  uint64_t zero = 0;
  cudaMemPoolSetAttribute(gPool, cudaMemPoolAttrReservedMemHigh, &zero);
}

void checkLaunch(const char *kernel) {
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) throw DeviceError(std::string("kernel ") + kernel + ": " + cudaGetErrorString(e));
}

}  // namespace simtrip::cuda
