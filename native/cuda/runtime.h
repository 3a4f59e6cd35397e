// The device runtime behind the CUDA engine: one device, one stream, a caching allocator, copies in and
// out. native/cuda/gpu/runtime.cu implements it on CUDA; native/cuda/host/runtime.cc on host memory for
// the CI build. Everything is ordered on the one stream: nothing here waits for the device except
// download(), synchronize() and collecting a read before its copy ran, so a training step runs ahead
// of the GPU until a value is read.
//
// A device fault never aborts the process. CUDA reports a kernel's failure (an illegal address, a
// launch failure) at some later call, and the calls that notice it may be frees in destructors, which
// must not throw: the runtime records the first fault and raises it, as a DeviceError, from the next
// checked call (an allocation, a copy, a launch, a synchronisation). Such a fault leaves the CUDA
// context unusable, so it stays recorded: every later checked call raises it again.
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
  // Launch limits (cudaDeviceProp; the host build emulates an H100's and tests may lower them).
  unsigned maxGridX = 2147483647u;
  unsigned maxGridY = 65535;
  unsigned maxGridZ = 65535;
  int maxThreadsPerSm = 2048;
  int maxBlocksPerSm = 32;
  size_t sharedPerSm = 228 * 1024;
  // The most elements a cuDNN descriptor counts (int): larger tensors are split (tests lower it).
  size_t maxLibraryElements = 2147483647u;
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

// What the runtime did since resetCounters(): the host-side cost of a training step, measured.
struct Counters {
  uint64_t allocs = 0, frees = 0;
  uint64_t uploads = 0, uploadBytes = 0;
  uint64_t stagedUploads = 0;  // uploads whose host copy into pinned memory ran off the main thread
  uint64_t downloads = 0;      // blocking reads (each one a synchronisation)
  uint64_t asyncReads = 0;     // reads queued on the stream and collected later
  uint64_t syncs = 0;          // waits for everything queued (download, synchronize)
  uint64_t eventWaits = 0;     // waits for one point of the stream (a read collected before its copy ran)
  uint64_t launches = 0;       // our kernels (library calls are counted as native calls)
  uint64_t blocks = 0;         // the blocks of their grids
};
Counters &counters();
void resetCounters();

DeviceInfo init(const InitOptions &options);
bool ready();
const DeviceInfo &device();

void *alloc(size_t bytes);
// Never throws: a failure is recorded and raised by the next checked call.
void release(void *p) noexcept;
// Host-to-device: the host buffer may be reused as soon as this returns.
void upload(void *dst, const void *src, size_t bytes);
// Device-to-host: waits for everything queued before it.
void download(void *dst, const void *src, size_t bytes);
void copy(void *dst, const void *src, size_t bytes);
void zero(void *dst, size_t bytes);
void synchronize();

// Reads that do not drain the stream: the copy into pinned memory is queued now (so a later release of
// src is ordered after it), and the bytes are collected once it has run.
int readAsync(const void *src, size_t bytes);
// Whether the copy has run; never waits.
bool readDone(int ticket);
// Copies the bytes out and frees the ticket; waits for that copy alone if it has not run yet.
void readCollect(int ticket, void *dst);

// Uploads whose copy into pinned memory runs on another thread (an N-API worker): stage() reserves a
// pinned buffer of `bytes` and returns its ticket and host address (main thread); another thread may
// fill the buffer (and touch nothing else); uploadStaged() queues its copy to the device (main thread)
// and hands the buffer back once that copy has run.
int stage(size_t bytes, void **host);
void uploadStaged(void *dst, int ticket);
void dropStaged(int ticket) noexcept;

// Points in the stream that the JS side can poll without blocking.
int recordEvent();
bool eventDone(int event);
void releaseEvent(int event);

MemoryStats memory();
void resetPeak();

// After a launch: reports launch errors without waiting for the kernel.
void checkLaunch(const char *kernel);

// The first fault that could not be raised where it happened; the next checked call raises it.
void recordFault(const std::string &what) noexcept;
// Throws the recorded fault as a DeviceError; every checked entry point calls it first.
void raiseFault();

#ifdef SIMTRIP_HOST_EMU
// Test controls of the host build (the `emulate` export): injected faults and emulated device limits.
namespace emulation {
enum class Fault { None, Free, Launch, Sync };
// The `after`+1-th free / launch / synchronisation from now fails (a launch fails asynchronously: its
// fault is raised by the next checked call, as on a GPU).
void injectFault(Fault kind, int after);
// Launches of `kernel` throw at launch (error) or do not run, leaving their outputs unwritten (skip).
void failKernel(const std::string &kernel, bool skip);
// Whether a kernel (or library call) of that name must fail now: throws, or returns true to skip it.
bool kernelFaulted(const char *kernel);
// The next `polls` readiness queries (readDone, eventDone) answer "not yet".
void pendingPolls(int polls);
bool consumePendingPoll();
// Launch limits and occupancy as a smaller GPU would have them.
DeviceInfo &limits();
// Forgets injected and recorded faults (tests only: a real fault leaves the context unusable).
void clear();
}  // namespace emulation
#else
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
