// The device itself as seen from JS: start-up, memory, copies, synchronisation, reads that do not
// drain the stream, uploads staged on a worker thread, and the runtime's counters.
#include <cstring>
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

// (pointer, bytes) -> ticket: a copy of the bytes into pinned memory, queued now (a later free of the
// pointer is ordered after it) and collected with readCollect once readDone says it ran.
SIMTRIP_EXPORT(readAsync) {
  args.need(2, "readAsync");
  return number(args.env, cuda::readAsync(args.ptr(0, "pointer"), args.size(1, "bytes")));
}

SIMTRIP_EXPORT(readDone) {
  args.need(1, "readDone");
  return boolean(args.env, cuda::readDone(args.integer(0, "ticket")));
}

// (ticket, out: typed array of exactly the bytes read)
SIMTRIP_EXPORT(readCollect) {
  args.need(2, "readCollect");
  const BytesView out = args.bytes(1, "out");
  cuda::readCollect(args.integer(0, "ticket"), out.data);
  return undefined(args.env);
}

namespace {

// A staged upload in flight: the array's bytes go into pinned memory on a libuv worker thread.
struct StageWork {
  napi_async_work work = nullptr;
  napi_deferred deferred = nullptr;
  napi_ref array = nullptr;  // keeps the source alive until the copy is done
  const void *src = nullptr;
  void *host = nullptr;
  size_t bytes = 0;
  int ticket = -1;
};

void stageExecute(napi_env, void *data) {
  auto *w = static_cast<StageWork *>(data);
  if (w->bytes) std::memcpy(w->host, w->src, w->bytes);
}

void stageComplete(napi_env env, napi_status status, void *data) {
  auto *w = static_cast<StageWork *>(data);
  napi_delete_reference(env, w->array);
  if (status == napi_ok) {
    napi_resolve_deferred(env, w->deferred, number(env, w->ticket));
  } else {
    dropStaged(w->ticket);
    napi_value message, error;
    napi_create_string_utf8(env, "stageUpload: the copy was cancelled", NAPI_AUTO_LENGTH, &message);
    napi_create_error(env, nullptr, message, &error);
    napi_reject_deferred(env, w->deferred, error);
  }
  napi_delete_async_work(env, w->work);
  delete w;
}

}  // namespace

// (typedArray) -> Promise<ticket>: the array's bytes copied into pinned memory off the main thread;
// uploadStaged(pointer, ticket) then queues them to the device without a copy on the main thread. The
// array must not change until the promise settles.
SIMTRIP_EXPORT(stageUpload) {
  args.need(1, "stageUpload");
  const BytesView values = args.bytes(0, "values");
  auto *w = new StageWork;
  w->src = values.data;
  w->bytes = values.bytes;
  try {
    w->ticket = cuda::stage(values.bytes, &w->host);
  } catch (...) {
    delete w;
    throw;
  }
  napi_value promise, name;
  napi_create_reference(args.env, args[0], 1, &w->array);
  napi_create_promise(args.env, &w->deferred, &promise);
  napi_create_string_utf8(args.env, "simtripStageUpload", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(args.env, nullptr, name, stageExecute, stageComplete, w, &w->work);
  napi_queue_async_work(args.env, w->work);
  return promise;
}

// (pointer, ticket): queues a staged upload's bytes to the device.
SIMTRIP_EXPORT(uploadStaged) {
  args.need(2, "uploadStaged");
  cuda::uploadStaged(args.ptr(0, "pointer"), args.integer(1, "ticket"));
  return undefined(args.env);
}

// (ticket): a staged upload that will not be used.
SIMTRIP_EXPORT(dropStaged) {
  args.need(1, "dropStaged");
  cuda::dropStaged(args.integer(0, "ticket"));
  return undefined(args.env);
}

// What the runtime did since resetCounters(): allocations, copies, synchronisations, launches, and
// the native calls by export.
SIMTRIP_EXPORT(counters) {
  const Counters &c = cuda::counters();
  napi_value out, calls;
  napi_create_object(args.env, &out);
  napi_create_object(args.env, &calls);
  const auto set = [&](const char *name, uint64_t v) { setProperty(args.env, out, name, number(args.env, static_cast<double>(v))); };
  set("allocs", c.allocs);
  set("frees", c.frees);
  set("uploads", c.uploads);
  set("uploadBytes", c.uploadBytes);
  set("stagedUploads", c.stagedUploads);
  set("downloads", c.downloads);
  set("asyncReads", c.asyncReads);
  set("syncs", c.syncs);
  set("eventWaits", c.eventWaits);
  set("launches", c.launches);
  set("blocks", c.blocks);
  forEachCallCount([&](const char *name, uint64_t n) { setProperty(args.env, calls, name, number(args.env, static_cast<double>(n))); });
  setProperty(args.env, out, "calls", calls);
  return out;
}

SIMTRIP_EXPORT(resetCounters) {
  cuda::resetCounters();
  resetCallCounts();
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
