// The host build's test controls (runtime.h's `emulation`), as one export:
//   emulate('faultFree' | 'faultLaunch' | 'faultSync', after)   the after+1-th such operation fails
//   emulate('failKernel' | 'skipKernel', name)                   a kernel or library call throws / does not run
//   emulate('pendingPolls', n)                                   the next n readiness queries say "not yet"
//   emulate('maxGridX' | 'maxGridY' | 'maxGridZ' | 'smCount' | 'maxThreadsPerSm' | 'maxBlocksPerSm' |
//           'maxLibraryElements', n)
//   emulate('clear')                                             back to an H100's limits, no faults
#include <string>

#include "../napi.h"
#include "../runtime.h"

namespace simtrip::cuda {

SIMTRIP_EXPORT(emulate) {
  args.need(1, "emulate");
  const std::string setting = args.text(0, "setting");
  if (setting == "clear") {
    emulation::clear();
    return undefined(args.env);
  }
  args.need(2, "emulate");
  if (setting == "failKernel" || setting == "skipKernel") {
    emulation::failKernel(args.text(1, "kernel"), setting == "skipKernel");
    return undefined(args.env);
  }
  const int value = args.integer(1, "value");
  if (value < 0) throw ArgError("emulate: " + setting + " must not be negative");
  DeviceInfo &limits = emulation::limits();
  if (setting == "faultFree") {
    emulation::injectFault(emulation::Fault::Free, value);
  } else if (setting == "faultLaunch") {
    emulation::injectFault(emulation::Fault::Launch, value);
  } else if (setting == "faultSync") {
    emulation::injectFault(emulation::Fault::Sync, value);
  } else if (setting == "pendingPolls") {
    emulation::pendingPolls(value);
  } else if (setting == "maxGridX") {
    limits.maxGridX = static_cast<unsigned>(value);
  } else if (setting == "maxGridY") {
    limits.maxGridY = static_cast<unsigned>(value);
  } else if (setting == "maxGridZ") {
    limits.maxGridZ = static_cast<unsigned>(value);
  } else if (setting == "smCount") {
    limits.smCount = value;
  } else if (setting == "maxThreadsPerSm") {
    limits.maxThreadsPerSm = value;
  } else if (setting == "maxBlocksPerSm") {
    limits.maxBlocksPerSm = value;
  } else if (setting == "maxLibraryElements") {
    limits.maxLibraryElements = static_cast<size_t>(value);
  } else {
    throw ArgError("emulate: unknown setting " + setting);
  }
  return undefined(args.env);
}

}  // namespace simtrip::cuda
