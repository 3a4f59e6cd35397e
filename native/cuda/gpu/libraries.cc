// Loads cuDNN 9 and cuBLAS with dlopen and resolves the functions of gpu/dynload.h.
#include <dlfcn.h>
#include <dirent.h>

#include <string>

#include "../libraries.h"
#include "../runtime.h"
#include "dynload.h"

namespace simtrip::cuda {

namespace lib {
Cudnn cudnn;
Cublas cublas;
}  // namespace lib

namespace {

std::string dirOf(const std::string &path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? std::string() : path.substr(0, slash);
}

// cuDNN 9's libcudnn.so.9 loads its sub-libraries (libcudnn_cnn.so.9, ...) by soname, and libcublas
// needs libcublasLt: loading the siblings first from the same folder lets those lookups succeed
// without LD_LIBRARY_PATH (a pip install's folders are not on the loader's path).
void preloadSiblings(const std::string &dir, const std::string &prefix) {
  if (dir.empty()) return;
  DIR *d = opendir(dir.c_str());
  if (!d) return;
  while (dirent *e = readdir(d)) {
    const std::string name = e->d_name;
    if (name.rfind(prefix, 0) == 0 && name.find(".so.") != std::string::npos) dlopen((dir + "/" + name).c_str(), RTLD_LAZY | RTLD_GLOBAL);
  }
  closedir(d);
}

void *openFirst(const std::vector<std::string> &candidates, const char *what, const char *siblings, std::string *chosen) {
  std::string tried;
  for (const std::string &c : candidates) {
    preloadSiblings(dirOf(c), siblings);
    if (void *h = dlopen(c.c_str(), RTLD_LAZY | RTLD_GLOBAL)) {
      *chosen = c;
      return h;
    }
    const char *err = dlerror();
    tried += "\n  " + c + (err ? std::string(": ") + err : std::string());
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
  void *dnn = openFirst(candidates.cudnn, "cuDNN 9 (libcudnn.so.9)", "libcudnn", &info.cudnnPath);
#define SIMTRIP_RESOLVE(f) resolve(dnn, #f, "cuDNN", lib::cudnn.f);
  SIMTRIP_CUDNN_FUNCTIONS(SIMTRIP_RESOLVE)
#undef SIMTRIP_RESOLVE
  info.cudnnVersion = static_cast<int>(lib::cudnn.cudnnGetVersion());
  if (info.cudnnVersion / 10000 != 9) {
    throw DeviceError("cuDNN " + std::to_string(info.cudnnVersion) + " at " + info.cudnnPath + " is not cuDNN 9");
  }
  void *blas = openFirst(candidates.cublas, "cuBLAS (libcublas.so.13 or .12)", "libcublasLt", &info.cublasPath);
#define SIMTRIP_RESOLVE(f) resolve(blas, #f, "cuBLAS", lib::cublas.f);
  SIMTRIP_CUBLAS_FUNCTIONS(SIMTRIP_RESOLVE)
#undef SIMTRIP_RESOLVE
  resolve(blas, "cublasGemmStridedBatchedEx", "cuBLAS", lib::cublas.cublasGemmStridedBatchedEx);
#ifdef SIMTRIP_REAL_CUBLAS
  static_assert(sizeof(static_cast<lib::GemmStridedBatchedEx>(&::cublasGemmStridedBatchedEx)) > 0,
                "cublasGemmStridedBatchedEx no longer has the signature the engine calls");
#endif
  int version = 0;
  if (lib::cublas.cublasGetVersion_v2(nullptr, &version) == CUBLAS_STATUS_SUCCESS) info.cublasVersion = version;
  return info;
}

}  // namespace simtrip::cuda
