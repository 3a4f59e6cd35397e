// The device runtime on CUDA: one non-blocking stream, the device's stream-ordered memory pool
// (cudaMallocAsync) kept warm like PyTorch's caching allocator, and pinned staging for uploads that
// never waits for the GPU: a training step uploads its batch and then dozens of small constants
// (tfjs makes a tensor of every scalar in an expression) between kernels, and an upload that waited
// for its buffer's previous copy would wait for every kernel queued before that copy. The same pinned
// buffers carry reads that do not drain the stream (readAsync) and uploads staged on other threads.
#include <algorithm>
#include <cstring>
#include <map>
#include <tuple>
#include <vector>

#include "../allocations.h"
#include "../launch.h"
#include "../runtime.h"

namespace simtrip::cuda {

namespace {

bool gReady = false;
DeviceInfo gInfo;
cudaStream_t gStream = nullptr;
cudaMemPool_t gPool = nullptr;
AllocationBook gBook;

// A pinned buffer an upload or a read is copied through. Free again once its copy has run (its
// event) and nobody holds it: a queued read until it is collected, a staged upload until it is queued.
struct Staging {
  void *host = nullptr;
  size_t bytes = 0;  // capacity
  size_t used = 0;   // bytes of the current read or staged upload
  cudaEvent_t done = nullptr;
  bool held = false;
};
std::vector<Staging> gStaging;

std::vector<cudaEvent_t> gEvents;
std::vector<int> gFreeEvents;

// The errors after which the context is unusable: every later call fails with them.
bool sticky(cudaError_t e) {
  switch (e) {
    case cudaErrorIllegalAddress:
    case cudaErrorLaunchFailure:
    case cudaErrorIllegalInstruction:
    case cudaErrorMisalignedAddress:
    case cudaErrorInvalidAddressSpace:
    case cudaErrorInvalidPc:
    case cudaErrorHardwareStackError:
    case cudaErrorAssert:
    case cudaErrorLaunchTimeout:
    case cudaErrorECCUncorrectable:
      return true;
    default:
      return false;
  }
}

void check(cudaError_t e, const char *what) {
  if (e == cudaSuccess) return;
  const std::string message = std::string(what) + ": " + cudaGetErrorString(e);
  if (sticky(e)) recordFault(message);
  throw DeviceError(message);
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
  gInfo.maxGridX = static_cast<unsigned>(p.maxGridSize[0]);
  gInfo.maxGridY = static_cast<unsigned>(p.maxGridSize[1]);
  gInfo.maxGridZ = static_cast<unsigned>(p.maxGridSize[2]);
  gInfo.maxThreadsPerSm = p.maxThreadsPerMultiProcessor;
  gInfo.maxBlocksPerSm = p.maxBlocksPerMultiProcessor;
  gInfo.sharedPerSm = p.sharedMemPerMultiprocessor;
  cudaDriverGetVersion(&gInfo.driverVersion);
  cudaRuntimeGetVersion(&gInfo.runtimeVersion);
  gReady = true;
  return gInfo;
}

bool ready() { return gReady; }

const DeviceInfo &device() { return gInfo; }

cudaStream_t stream() { return gStream; }

void *alloc(size_t bytes) {
  raiseFault();
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
  counters().allocs++;
  return p;
}

void release(void *p) noexcept {
  if (!p || !gBook.remove(p)) return;
  const cudaError_t e = cudaFreeAsync(p, gStream);
  if (e != cudaSuccess) recordFault(std::string("cudaFreeAsync: ") + cudaGetErrorString(e));
}

namespace {

// Whether a staging buffer's copy has run; a failed kernel before it is recorded and raised.
bool copied(const Staging &s) {
  const cudaError_t e = cudaEventQuery(s.done);
  if (e == cudaErrorNotReady) return false;
  check(e, "a GPU kernel failed");
  return true;
}

// The smallest free staging buffer of at least `bytes`, or a new one (sizes are powers of two from
// 4 KiB, so buffers are reused across steps; as many exist as copies are in flight); held for the caller.
int takeStaging(size_t bytes) {
  int best = -1;
  for (int i = 0; i < static_cast<int>(gStaging.size()); i++) {
    const Staging &s = gStaging[i];
    if (s.held || s.bytes < bytes || (best >= 0 && s.bytes >= gStaging[best].bytes)) continue;
    if (copied(s)) best = i;
  }
  if (best < 0) {
    Staging s;
    s.bytes = 4096;
    while (s.bytes < bytes) s.bytes *= 2;
    check(cudaMallocHost(&s.host, s.bytes), "cudaMallocHost");
    check(cudaEventCreateWithFlags(&s.done, cudaEventDisableTiming), "cudaEventCreate");
    gStaging.push_back(s);
    best = static_cast<int>(gStaging.size()) - 1;
  }
  gStaging[best].held = true;
  gStaging[best].used = bytes;
  return best;
}

Staging &held(int ticket, const char *what) {
  if (ticket < 0 || ticket >= static_cast<int>(gStaging.size()) || !gStaging[ticket].held) {
    throw DeviceError(std::string(what) + ": no such ticket");
  }
  return gStaging[ticket];
}

// Queues the staged bytes to dst and hands the buffer back (free again once the copy has run).
void queueUpload(void *dst, Staging &s) {
  s.held = false;
  check(cudaMemcpyAsync(dst, s.host, s.used, cudaMemcpyHostToDevice, gStream), "cudaMemcpyAsync (upload)");
  check(cudaEventRecord(s.done, gStream), "cudaEventRecord");
  counters().uploads++;
  counters().uploadBytes += s.used;
}

}  // namespace

void upload(void *dst, const void *src, size_t bytes) {
  raiseFault();
  if (!bytes) return;
  Staging &s = gStaging[takeStaging(bytes)];
  std::memcpy(s.host, src, bytes);
  queueUpload(dst, s);
}

int stage(size_t bytes, void **host) {
  raiseFault();
  const int ticket = takeStaging(std::max<size_t>(bytes, 1));
  gStaging[ticket].used = bytes;
  *host = gStaging[ticket].host;
  return ticket;
}

void uploadStaged(void *dst, int ticket) {
  raiseFault();
  Staging &s = held(ticket, "uploadStaged");
  if (!s.used) {
    s.held = false;
    return;
  }
  queueUpload(dst, s);
  counters().stagedUploads++;
}

void dropStaged(int ticket) noexcept {
  if (ticket >= 0 && ticket < static_cast<int>(gStaging.size())) gStaging[ticket].held = false;
}

void download(void *dst, const void *src, size_t bytes) {
  raiseFault();
  if (!bytes) return;
  counters().downloads++;
  counters().syncs++;
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, gStream), "cudaMemcpyAsync (download)");
  // Also reports any earlier kernel's failure, which surfaces at the first synchronisation.
  check(cudaStreamSynchronize(gStream), "a GPU kernel failed before this read");
}

int readAsync(const void *src, size_t bytes) {
  raiseFault();
  const int ticket = takeStaging(std::max<size_t>(bytes, 1));
  Staging &s = gStaging[ticket];
  s.used = bytes;
  counters().asyncReads++;
  if (bytes) check(cudaMemcpyAsync(s.host, src, bytes, cudaMemcpyDeviceToHost, gStream), "cudaMemcpyAsync (read)");
  check(cudaEventRecord(s.done, gStream), "cudaEventRecord");
  return ticket;
}

bool readDone(int ticket) {
  raiseFault();
  return copied(held(ticket, "readDone"));
}

void readCollect(int ticket, void *dst) {
  raiseFault();
  Staging &s = held(ticket, "readCollect");
  if (!copied(s)) {
    counters().eventWaits++;
    check(cudaEventSynchronize(s.done), "a GPU kernel failed before this read");
  }
  std::memcpy(dst, s.host, s.used);
  s.held = false;
}

void copy(void *dst, const void *src, size_t bytes) {
  raiseFault();
  if (bytes) check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, gStream), "cudaMemcpyAsync (copy)");
}

void zero(void *dst, size_t bytes) {
  raiseFault();
  if (bytes) check(cudaMemsetAsync(dst, 0, bytes, gStream), "cudaMemsetAsync");
}

void synchronize() {
  raiseFault();
  counters().syncs++;
  check(cudaStreamSynchronize(gStream), "a GPU kernel failed");
}

int recordEvent() {
  raiseFault();
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
  raiseFault();
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

int blocksPerSm(const void *kernel, unsigned threads, size_t sharedBytes) {
  static std::map<std::tuple<const void *, unsigned, size_t>, int> known;
  const auto key = std::make_tuple(kernel, threads, sharedBytes);
  const auto it = known.find(key);
  if (it != known.end()) return it->second;
  int blocks = 0;
  check(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, kernel, static_cast<int>(threads), sharedBytes),
        "cudaOccupancyMaxActiveBlocksPerMultiprocessor");
  blocks = std::max(blocks, 1);
  known.emplace(key, blocks);
  return blocks;
}

void checkLaunch(const char *kernel) {
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) check(e, (std::string("kernel ") + kernel).c_str());
}

}  // namespace simtrip::cuda
