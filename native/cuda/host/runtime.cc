// The device runtime on host memory (the CI build): allocations are malloc'd, copies are memcpy, and
// every launch has finished when it returns. It keeps the same books as the GPU runtime (bytes in use,
// peak), and an optional capacity so that running out of memory can be tested.
#include <cstdlib>
#include <cstring>
#include <unordered_map>

#include "../runtime.h"

namespace simtrip::cuda {

namespace {

bool gReady = false;
DeviceInfo gInfo;
size_t gLimit = 0;
size_t gInUse = 0;
size_t gPeak = 0;
std::unordered_map<void *, size_t> gSizes;

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
  if (gLimit && gInUse + bytes > gLimit) throw OutOfMemory(bytes, gLimit - gInUse, gLimit);
  // 256-byte alignment, as cudaMalloc gives: vectorised kernels may rely on it.
  void *p = std::aligned_alloc(256, (bytes + 255) / 256 * 256);
  if (!p) throw OutOfMemory(bytes, 0, gLimit);
  gSizes[p] = bytes;
  gInUse += bytes;
  if (gInUse > gPeak) gPeak = gInUse;
  return p;
}

void release(void *p) {
  if (!p) return;
  auto it = gSizes.find(p);
  if (it == gSizes.end()) throw DeviceError("release of a pointer this runtime did not allocate");
  gInUse -= it->second;
  gSizes.erase(it);
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
  s.inUse = gInUse;
  s.peak = gPeak;
  s.reserved = gInUse;
  s.reservedPeak = gPeak;
  s.totalBytes = gLimit;
  s.freeBytes = gLimit ? gLimit - gInUse : 0;
  return s;
}

void resetPeak() { gPeak = gInUse; }

void checkLaunch(const char *) {}

}  // namespace simtrip::cuda
