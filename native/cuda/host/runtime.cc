// The device runtime on host memory (the CI build): allocations are malloc'd, copies are memcpy, and
// every launch has finished when it returns. It keeps the same books as the GPU runtime (bytes in use,
// peak), an optional capacity so that running out of memory can be tested, and the test controls of
// runtime.h's `emulation`: injected faults, reads that are not ready yet, smaller launch limits.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unordered_map>
#include <vector>

#include "../allocations.h"
#include "../launch.h"
#include "../runtime.h"

namespace simtrip::cuda {

namespace emulation {
void clearRecordedFault();
}

namespace {

bool gReady = false;
DeviceInfo gInfo;
size_t gLimit = 0;
AllocationBook gBook;

// Host buffers behind queued reads and staged uploads, by ticket.
std::vector<std::vector<char>> gBuffers;
std::vector<bool> gHeld;

emulation::Fault gFaultKind = emulation::Fault::None;
int gFaultAfter = 0;
std::unordered_map<std::string, bool> gFailingKernels;  // name -> skip (true) or throw (false)
int gPendingPolls = 0;

// Whether the operation of `kind` now is the injected failure.
bool injected(emulation::Fault kind) {
  if (gFaultKind != kind) return false;
  if (gFaultAfter-- > 0) return false;
  gFaultKind = emulation::Fault::None;
  return true;
}

int takeBuffer(size_t bytes) {
  for (size_t i = 0; i < gHeld.size(); i++) {
    if (!gHeld[i]) {
      gHeld[i] = true;
      gBuffers[i].resize(bytes);
      return static_cast<int>(i);
    }
  }
  gBuffers.emplace_back(bytes);
  gHeld.push_back(true);
  return static_cast<int>(gBuffers.size()) - 1;
}

std::vector<char> &heldBuffer(int ticket, const char *what) {
  if (ticket < 0 || ticket >= static_cast<int>(gHeld.size()) || !gHeld[ticket]) throw DeviceError(std::string(what) + ": no such ticket");
  return gBuffers[ticket];
}

void syncPoint(const char *what) {
  raiseFault();
  counters().syncs++;
  if (injected(emulation::Fault::Sync)) {
    const std::string message = std::string(what) + ": an illegal memory access was encountered (injected)";
    recordFault(message);
    throw DeviceError(message);
  }
}

}  // namespace

DeviceInfo init(const InitOptions &options) {
  gLimit = options.memoryLimit;
  if (gReady) return gInfo;
  gInfo.name = "host emulation (no GPU)";
  gInfo.smCount = 4;
  gInfo.totalBytes = gLimit;
  gInfo.emulated = true;
  gReady = true;
  return gInfo;
}

bool ready() { return gReady; }

const DeviceInfo &device() { return gInfo; }

void *alloc(size_t bytes) {
  raiseFault();
  if (bytes == 0) return nullptr;
  if (gLimit && gBook.inUse() + bytes > gLimit) throw OutOfMemory(bytes, gLimit - gBook.inUse(), gLimit);
  // 256-byte alignment, as cudaMalloc gives: vectorised kernels may rely on it.
  void *p = std::aligned_alloc(256, (bytes + 255) / 256 * 256);
  if (!p) throw OutOfMemory(bytes, 0, gLimit);
  gBook.add(p, bytes);
  counters().allocs++;
  return p;
}

void release(void *p) noexcept {
  if (!p || !gBook.remove(p)) return;
  std::free(p);
  if (injected(emulation::Fault::Free)) recordFault("cudaFreeAsync: an illegal memory access was encountered (injected)");
}

void upload(void *dst, const void *src, size_t bytes) {
  raiseFault();
  if (!bytes) return;
  counters().uploads++;
  counters().uploadBytes += bytes;
  std::memcpy(dst, src, bytes);
}

int stage(size_t bytes, void **host) {
  raiseFault();
  const int ticket = takeBuffer(bytes);
  *host = gBuffers[ticket].data();
  return ticket;
}

void uploadStaged(void *dst, int ticket) {
  raiseFault();
  std::vector<char> &b = heldBuffer(ticket, "uploadStaged");
  if (!b.empty()) {
    counters().uploads++;
    counters().stagedUploads++;
    counters().uploadBytes += b.size();
    std::memcpy(dst, b.data(), b.size());
  }
  gHeld[ticket] = false;
}

void dropStaged(int ticket) noexcept {
  if (ticket >= 0 && ticket < static_cast<int>(gHeld.size())) gHeld[ticket] = false;
}

void download(void *dst, const void *src, size_t bytes) {
  if (!bytes) return raiseFault();
  syncPoint("a GPU kernel failed before this read");
  counters().downloads++;
  std::memcpy(dst, src, bytes);
}

int readAsync(const void *src, size_t bytes) {
  raiseFault();
  const int ticket = takeBuffer(bytes);
  if (bytes) std::memcpy(gBuffers[ticket].data(), src, bytes);
  counters().asyncReads++;
  return ticket;
}

bool readDone(int ticket) {
  raiseFault();
  heldBuffer(ticket, "readDone");
  return !emulation::consumePendingPoll();
}

void readCollect(int ticket, void *dst) {
  raiseFault();
  std::vector<char> &b = heldBuffer(ticket, "readCollect");
  if (gPendingPolls > 0) {
    // Collected before its copy ran: on the GPU this waits for that copy alone.
    gPendingPolls = 0;
    counters().eventWaits++;
  }
  if (!b.empty()) std::memcpy(dst, b.data(), b.size());
  gHeld[ticket] = false;
}

void copy(void *dst, const void *src, size_t bytes) {
  raiseFault();
  if (bytes) std::memmove(dst, src, bytes);
}
void zero(void *dst, size_t bytes) {
  raiseFault();
  if (bytes) std::memset(dst, 0, bytes);
}
void synchronize() { syncPoint("a GPU kernel failed"); }

int recordEvent() {
  raiseFault();
  return 0;
}
bool eventDone(int) {
  raiseFault();
  return !emulation::consumePendingPoll();
}
void releaseEvent(int) {}

MemoryStats memory() {
  MemoryStats s;
  s.inUse = gBook.inUse();
  s.peak = gBook.peak();
  s.reserved = s.inUse;
  s.reservedPeak = s.peak;
  s.totalBytes = gLimit;
  s.freeBytes = gLimit ? gLimit - s.inUse : 0;
  return s;
}

void resetPeak() { gBook.resetPeak(); }

int blocksPerSm(const void *, unsigned threads, size_t sharedBytes) {
  int blocks = std::min(gInfo.maxThreadsPerSm / static_cast<int>(std::max(threads, 1u)), gInfo.maxBlocksPerSm);
  if (sharedBytes) blocks = std::min(blocks, static_cast<int>(gInfo.sharedPerSm / sharedBytes));
  return std::max(blocks, 1);
}

void checkLaunch(const char *kernel) {
  if (injected(emulation::Fault::Launch)) {
    // Asynchronous, as a kernel's fault on a GPU: raised by the next checked call, not this launch.
    recordFault(std::string("kernel ") + kernel + ": an illegal memory access was encountered (injected)");
  }
}

namespace emulation {

void injectFault(Fault kind, int after) {
  gFaultKind = kind;
  gFaultAfter = after;
}

void failKernel(const std::string &kernel, bool skip) { gFailingKernels[kernel] = skip; }

bool kernelFaulted(const char *kernel) {
  if (gFailingKernels.empty()) return false;
  const auto it = gFailingKernels.find(kernel);
  if (it == gFailingKernels.end()) return false;
  if (!it->second) throw DeviceError(std::string("launching ") + kernel + ": too many resources requested for launch (injected)");
  return true;
}

void pendingPolls(int polls) { gPendingPolls = polls; }

bool consumePendingPoll() {
  if (gPendingPolls <= 0) return false;
  gPendingPolls--;
  return true;
}

DeviceInfo &limits() { return gInfo; }

void clear() {
  gFaultKind = Fault::None;
  gFailingKernels.clear();
  gPendingPolls = 0;
  gInfo = DeviceInfo{};
  gInfo.name = "host emulation (no GPU)";
  gInfo.smCount = 4;
  gInfo.totalBytes = gLimit;
  gInfo.emulated = true;
  clearRecordedFault();
}

}  // namespace emulation

}  // namespace simtrip::cuda
