// The host build runs its own reference convolutions and GEMMs (host/dnn.cc): nothing to load.
#include "../libraries.h"

namespace simtrip::cuda {

LibraryInfo loadLibraries(const LibraryCandidates &) { return LibraryInfo{}; }

}  // namespace simtrip::cuda
