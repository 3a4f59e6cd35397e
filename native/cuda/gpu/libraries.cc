// Loads cuDNN 9 and cuBLAS with dlopen and resolves the functions of gpu/dynload.h.
#include <dlfcn.h>

#include <string>
#include <vector>

#include "../libraries.h"
#include "../runtime.h"
#include "dynload.h"

namespace simtrip::cuda {

namespace lib {
Cudnn cudnn;
Cublas cublas;
}  // namespace lib

namespace {

// A candidate line: the library, or its dependencies first, tab-separated, the library last. The
// TypeScript side (src/engine/cuda/libraries.ts) lists, beside each file it found, the libraries of the
// same major version in its folder in dependency order: cuDNN 9's libcudnn.so.9 loads its
// sub-libraries (libcudnn_graph.so.9, ...) by soname, and libcublas.so.N needs libcublasLt.so.N;
// loading them first from the same folder lets those lookups succeed without LD_LIBRARY_PATH (a pip
// install's folders are not on the loader's path), and never loads another major's copy.
std::vector<std::string> fields(const std::string &line) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t tab; (tab = line.find('\t', start)) != std::string::npos; start = tab + 1) out.push_back(line.substr(start, tab - start));
  out.push_back(line.substr(start));
  return out;
}

void *openFirst(const std::vector<std::string> &candidates, const char *what, std::string *chosen) {
  std::string tried;
  for (const std::string &line : candidates) {
    const std::vector<std::string> files = fields(line);
    const std::string &library = files.back();
    std::string failedPreload;
    for (size_t i = 0; i + 1 < files.size(); i++) {
      if (!dlopen(files[i].c_str(), RTLD_LAZY | RTLD_GLOBAL)) {
        const char *err = dlerror();
        if (failedPreload.empty()) failedPreload = " (after " + files[i] + " failed: " + (err ? err : "unknown") + ")";
      }
    }
    if (void *h = dlopen(library.c_str(), RTLD_LAZY | RTLD_GLOBAL)) {
      *chosen = library;
      return h;
    }
    const char *err = dlerror();
    tried += "\n  " + library + (err ? std::string(": ") + err : std::string()) + failedPreload;
  }
  throw DeviceError(std::string(what) + " was not found" + (tried.empty() ? std::string(" (no candidates)") : ", tried:" + tried));
}

template <class F>
void resolve(void *handle, const char *name, const char *library, F &out) {
  out = reinterpret_cast<F>(dlsym(handle, name));
  if (!out) throw DeviceError(std::string(library) + " lacks " + name + " (wrong version?)");
}

}  // namespace

LibraryInfo loadLibraries(const LibraryCandidates &candidates) {
  LibraryInfo info;
  void *dnn = openFirst(candidates.cudnn, "cuDNN 9 (libcudnn.so.9)", &info.cudnnPath);
#define SIMTRIP_RESOLVE(f) resolve(dnn, #f, "cuDNN", lib::cudnn.f);
  SIMTRIP_CUDNN_FUNCTIONS(SIMTRIP_RESOLVE)
#undef SIMTRIP_RESOLVE
  info.cudnnVersion = static_cast<int>(lib::cudnn.cudnnGetVersion());
  if (info.cudnnVersion / 10000 != 9) {
    throw DeviceError("cuDNN " + std::to_string(info.cudnnVersion) + " at " + info.cudnnPath + " is not cuDNN 9");
  }
  void *blas = openFirst(candidates.cublas, "cuBLAS (libcublas.so.13 or .12)", &info.cublasPath);
#define SIMTRIP_RESOLVE(f) resolve(blas, #f, "cuBLAS", lib::cublas.f);
  SIMTRIP_CUBLAS_FUNCTIONS(SIMTRIP_RESOLVE)
#undef SIMTRIP_RESOLVE
  resolve(blas, "cublasGemmStridedBatchedEx", "cuBLAS", lib::cublas.cublasGemmStridedBatchedEx);
#ifdef SIMTRIP_REAL_CUBLAS
  static_assert(sizeof(static_cast<lib::GemmStridedBatchedEx>(&::cublasGemmStridedBatchedEx)) > 0,
                "cublasGemmStridedBatchedEx no longer has the signature the engine calls");
#endif
  // cublasGetProperty needs no handle (cublasGetVersion would, and has no handle before the first GEMM).
  int major = 0, minor = 0, patch = 0;
  if (lib::cublas.cublasGetProperty(MAJOR_VERSION, &major) == CUBLAS_STATUS_SUCCESS &&
      lib::cublas.cublasGetProperty(MINOR_VERSION, &minor) == CUBLAS_STATUS_SUCCESS &&
      lib::cublas.cublasGetProperty(PATCH_LEVEL, &patch) == CUBLAS_STATUS_SUCCESS) {
    info.cublasVersion = major * 10000 + minor * 100 + patch;
  }
  return info;
}

}  // namespace simtrip::cuda
