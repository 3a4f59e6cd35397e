// The device runtime on host memory (the CI build): allocations are malloc'd, copies are memcpy, and
// every launch has finished when it returns. It keeps the same books as the GPU runtime (bytes in use,
// peak), and an optional capacity so that running out of memory can be tested.
#include <cstdlib>
#include <cstring>
#include "../allocations.h"
#include "../runtime.h"

namespace simtrip::cuda {

namespace {

bool gReady = false;
DeviceInfo gInfo;
size_t gLimit = 0;
AllocationBook gBook;

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
  if (bytes == 0) return nullptr;
  if (gLimit && gBook.inUse() + bytes > gLimit) throw OutOfMemory(bytes, gLimit - gBook.inUse(), gLimit);
  // 256-byte alignment, as cudaMalloc gives: vectorised kernels may rely on it.
  void *p = std::aligned_alloc(256, (bytes + 255) / 256 * 256);
  if (!p) throw OutOfMemory(bytes, 0, gLimit);
  gBook.add(p, bytes);
  return p;
}

void release(void *p) {
  if (!p) return;
  gBook.remove(p);
  std::free(p);
}

void upload(void *dst, const void *src, size_t bytes) {
  if (bytes) std::memcpy(dst, src, bytes);
}
void download(void *dst, const void *src, size_t bytes) {
  if (bytes) std::memcpy(dst, src, bytes);
}
void copy(void *dst, const void *src, size_t bytes) {
  if (bytes) std::memmove(dst, src, bytes);
}
void zero(void *dst, size_t bytes) {
  if (bytes) std::memset(dst, 0, bytes);
}
void synchronize() {}

int recordEvent() { return 0; }
bool eventDone(int) { return true; }
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

void checkLaunch(const char *) {}

}  // namespace simtrip::cuda
