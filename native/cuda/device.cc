// The device itself as seen from JS: start-up, memory, copies, synchronisation.
#include <sstream>

#include "libraries.h"
#include "napi.h"
#include "runtime.h"

namespace simtrip::cuda {

namespace {

std::vector<std::string> lines(const std::string &text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) out.push_back(line);
  }
  return out;
}

LibraryInfo gLibraries;

}  // namespace

// (device, memoryLimitBytes, cudnnCandidates, cublasCandidates): candidates are newline-separated
// paths. With none, only the device starts: a machine without a GPU fails here, before anyone looks
// for libraries; a second call with candidates loads them.
SIMTRIP_EXPORT(init) {
  args.need(4, "init");
  InitOptions options;
  options.device = args.integer(0, "device");
  options.memoryLimit = args.size(1, "memoryLimit");
  const DeviceInfo info = cuda::init(options);
  const std::vector<std::string> cudnn = lines(args.text(2, "cudnn")), cublas = lines(args.text(3, "cublas"));
  const bool loaded = !gLibraries.cudnnPath.empty() || gLibraries.cudnnVersion != 0;
  if (!loaded && (!cudnn.empty() || !cublas.empty())) gLibraries = loadLibraries({cudnn, cublas});
  napi_value out;
  napi_create_object(args.env, &out);
  setProperty(args.env, out, "name", string(args.env, info.name.c_str()));
  setProperty(args.env, out, "computeCapability", string(args.env, (std::to_string(info.ccMajor) + "." + std::to_string(info.ccMinor)).c_str()));
  setProperty(args.env, out, "smCount", number(args.env, info.smCount));
  setProperty(args.env, out, "totalBytes", number(args.env, static_cast<double>(info.totalBytes)));
  setProperty(args.env, out, "driverVersion", number(args.env, info.driverVersion));
  setProperty(args.env, out, "runtimeVersion", number(args.env, info.runtimeVersion));
  setProperty(args.env, out, "cudnnVersion", number(args.env, gLibraries.cudnnVersion));
  setProperty(args.env, out, "cublasVersion", number(args.env, gLibraries.cublasVersion));
  setProperty(args.env, out, "cudnnPath", string(args.env, gLibraries.cudnnPath.c_str()));
  setProperty(args.env, out, "cublasPath", string(args.env, gLibraries.cublasPath.c_str()));
  setProperty(args.env, out, "emulated", boolean(args.env, info.emulated));
  return out;
}

// (bytes) -> pointer
SIMTRIP_EXPORT(alloc) {
  args.need(1, "alloc");
  return number(args.env, static_cast<double>(reinterpret_cast<uintptr_t>(cuda::alloc(args.size(0, "bytes")))));
}

// (pointer)
SIMTRIP_EXPORT(free) {
  args.need(1, "free");
  release(args.ptr(0, "pointer"));
  return undefined(args.env);
}

// (pointer, typedArray): the array's bytes to the device.
SIMTRIP_EXPORT(upload) {
  args.need(2, "upload");
  const BytesView host = args.bytes(1, "values");
  cuda::upload(args.ptr(0, "pointer"), host.data, host.bytes);
  return undefined(args.env);
}

// (pointer, typedArray): fills the array from the device; waits for the queued work.
SIMTRIP_EXPORT(download) {
  args.need(2, "download");
  const BytesView host = args.bytes(1, "out");
  cuda::download(host.data, args.ptr(0, "pointer"), host.bytes);
  return undefined(args.env);
}

// (dst, src, bytes)
SIMTRIP_EXPORT(copy) {
  args.need(3, "copy");
  cuda::copy(args.ptr(0, "dst"), args.ptr(1, "src"), args.size(2, "bytes"));
  return undefined(args.env);
}

// (pointer, bytes)
SIMTRIP_EXPORT(zero) {
  args.need(2, "zero");
  cuda::zero(args.ptr(0, "pointer"), args.size(1, "bytes"));
  return undefined(args.env);
}

SIMTRIP_EXPORT(synchronize) {
  cuda::synchronize();
  return undefined(args.env);
}

SIMTRIP_EXPORT(recordEvent) { return number(args.env, cuda::recordEvent()); }

SIMTRIP_EXPORT(eventDone) {
  args.need(1, "eventDone");
  return boolean(args.env, cuda::eventDone(args.integer(0, "event")));
}

SIMTRIP_EXPORT(releaseEvent) {
  args.need(1, "releaseEvent");
  cuda::releaseEvent(args.integer(0, "event"));
  return undefined(args.env);
}

SIMTRIP_EXPORT(memory) {
  const MemoryStats s = cuda::memory();
  napi_value out;
  napi_create_object(args.env, &out);
  setProperty(args.env, out, "inUse", number(args.env, static_cast<double>(s.inUse)));
  setProperty(args.env, out, "peak", number(args.env, static_cast<double>(s.peak)));
  setProperty(args.env, out, "reserved", number(args.env, static_cast<double>(s.reserved)));
  setProperty(args.env, out, "reservedPeak", number(args.env, static_cast<double>(s.reservedPeak)));
  setProperty(args.env, out, "free", number(args.env, static_cast<double>(s.freeBytes)));
  setProperty(args.env, out, "total", number(args.env, static_cast<double>(s.totalBytes)));
  return out;
}

SIMTRIP_EXPORT(resetPeak) {
  cuda::resetPeak();
  return undefined(args.env);
}

}  // namespace simtrip::cuda
