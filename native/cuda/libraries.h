// cuDNN and cuBLAS are found at run time, not at link time: the addon builds where their headers or
// libraries are missing (CI has nvcc only) and loads on machines without them. The TS side lists the
// candidate files (system paths, CUDA_HOME, CUDNN_PATH, pip's nvidia packages); the first that loads wins.
#pragma once

#include <string>
#include <vector>

namespace simtrip::cuda {

// Each candidate is a line: the library file, or the files to load first and the library last,
// tab-separated (src/engine/cuda/libraries.ts).
struct LibraryCandidates {
  std::vector<std::string> cudnn;
  std::vector<std::string> cublas;
};

struct LibraryInfo {
  std::string cudnnPath;
  std::string cublasPath;
  int cudnnVersion = 0;   // cudnnGetVersion(), e.g. 91400
  int cublasVersion = 0;  // cublasGetProperty: major * 10000 + minor * 100 + patch, e.g. 130100
};

// Loads both libraries and resolves every function the engine calls; throws DeviceError naming what is
// missing. The host build has nothing to load.
LibraryInfo loadLibraries(const LibraryCandidates &candidates);

}  // namespace simtrip::cuda
