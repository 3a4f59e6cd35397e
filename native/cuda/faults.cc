// What both runtimes share: the counters of runtime.h and the recorded fault.
#include <mutex>

#include "runtime.h"

namespace simtrip::cuda {

namespace {

Counters gCounters;
std::mutex gFaultLock;  // a fault may be recorded from a library's or a worker's thread
std::string gFault;

}  // namespace

Counters &counters() { return gCounters; }

void resetCounters() { gCounters = Counters{}; }

void recordFault(const std::string &what) noexcept {
  try {
    std::lock_guard<std::mutex> lock(gFaultLock);
    if (gFault.empty()) gFault = what;
  } catch (...) {
    // Out of memory for the message itself: nothing better to do than keep the first one.
  }
}

void raiseFault() {
  std::string fault;
  {
    std::lock_guard<std::mutex> lock(gFaultLock);
    fault = gFault;
  }
  if (!fault.empty()) throw DeviceError("the GPU failed: " + fault + " (the CUDA engine cannot continue in this process)");
}

#ifdef SIMTRIP_HOST_EMU
namespace emulation {
void clearRecordedFault() {
  std::lock_guard<std::mutex> lock(gFaultLock);
  gFault.clear();
}
}  // namespace emulation
#endif

}  // namespace simtrip::cuda
