// The books both runtimes keep on device memory: the size of every live allocation, the bytes in use
// and their peak (what `npm run bench` and the trainer report as GPU memory).
#pragma once

#include <algorithm>
#include <cstddef>
#include <unordered_map>

#include "runtime.h"

namespace simtrip::cuda {

class AllocationBook {
 public:
  void add(void *p, size_t bytes) {
    sizes_[p] = bytes;
    inUse_ += bytes;
    peak_ = std::max(peak_, inUse_);
  }

  // Forgets p before it is freed, and counts the free. A pointer the runtime did not hand out is a
  // bug, not a free: it is recorded as a fault (raised by the next checked call), and false says not
  // to free it. Never throws: frees run in destructors.
  bool remove(void *p) noexcept {
    auto it = sizes_.find(p);
    if (it == sizes_.end()) {
      recordFault("release of a pointer this runtime did not allocate");
      return false;
    }
    inUse_ -= it->second;
    sizes_.erase(it);
    counters().frees++;
    return true;
  }

  size_t inUse() const { return inUse_; }
  size_t peak() const { return peak_; }
  void resetPeak() { peak_ = inUse_; }

 private:
  std::unordered_map<void *, size_t> sizes_;
  size_t inUse_ = 0;
  size_t peak_ = 0;
};

}  // namespace simtrip::cuda
