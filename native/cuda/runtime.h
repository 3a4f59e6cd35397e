// The device runtime behind the CUDA engine: one device, one stream, a caching allocator, copies in and
// out. native/cuda/gpu/runtime.cu implements it on CUDA; native/cuda/host/runtime.cc on host memory for
// the CI build. Everything is ordered on the one stream: nothing here waits for the device except
// download() and synchronize(), so a training step runs ahead of the GPU until a value is read.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "compat.h"

namespace simtrip::cuda {

struct DeviceInfo {
  std::string name;
  int ccMajor = 0;
  int ccMinor = 0;
  int smCount = 0;
  size_t totalBytes = 0;
  int driverVersion = 0;   // CUDA version the driver supports, e.g. 13000
  int runtimeVersion = 0;  // the CUDA runtime linked in
  bool emulated = false;   // the host build
};

struct InitOptions {
  int device = 0;
  // Host build only: the capacity it pretends to have, so out-of-memory handling can be tested (0: none).
  size_t memoryLimit = 0;
};

// An allocation that does not fit. The N-API layer turns it into an Error with code SIMTRIP_GPU_OOM.
struct OutOfMemory : std::runtime_error {
  size_t requested, freeBytes, totalBytes;
  OutOfMemory(size_t req, size_t free, size_t total)
      : std::runtime_error("GPU out of memory: asked for " + std::to_string(req) + " bytes, " + std::to_string(free) +
                           " of " + std::to_string(total) + " free"),
        requested(req),
        freeBytes(free),
        totalBytes(total) {}
};

// A CUDA, cuDNN or cuBLAS failure (error code SIMTRIP_GPU_ERROR on the JS side).
struct DeviceError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct MemoryStats {
  size_t inUse = 0;     // bytes held by live allocations (tensors and scratch)
  size_t peak = 0;      // the most inUse has been since the last resetPeak()
  size_t reserved = 0;  // what the caching pool holds from the driver
  size_t reservedPeak = 0;
  size_t freeBytes = 0;  // free on the device, as the driver reports it
  size_t totalBytes = 0;
};

DeviceInfo init(const InitOptions &options);
bool ready();
const DeviceInfo &device();

void *alloc(size_t bytes);
void release(void *p);
// Host-to-device: the host buffer may be reused as soon as this returns.
void upload(void *dst, const void *src, size_t bytes);
// Device-to-host: waits for everything queued before it.
void download(void *dst, const void *src, size_t bytes);
void copy(void *dst, const void *src, size_t bytes);
void zero(void *dst, size_t bytes);
void synchronize();

// Points in the stream that the JS side can poll without blocking (async reads).
int recordEvent();
bool eventDone(int event);
void releaseEvent(int event);

MemoryStats memory();
void resetPeak();

// After a launch: reports launch errors without waiting for the kernel.
void checkLaunch(const char *kernel);

#ifndef SIMTRIP_HOST_EMU
cudaStream_t stream();
#endif

// Scratch memory for the duration of one call. Allocation and release are ordered on the stream, so
// releasing right after queuing the kernels that use it is safe.
class Scratch {
 public:
  explicit Scratch(size_t bytes) : ptr_(bytes ? alloc(bytes) : nullptr), bytes_(bytes) {}
  ~Scratch() { release(ptr_); }
  Scratch(const Scratch &) = delete;
  Scratch &operator=(const Scratch &) = delete;
  template <class T>
  T *as() const {
    return static_cast<T *>(ptr_);
  }
  size_t bytes() const { return bytes_; }

 private:
  void *ptr_;
  size_t bytes_;
};

}  // namespace simtrip::cuda
