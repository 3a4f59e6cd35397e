// N-API async work that settles a promise: the native addons' calls that run on libuv's pool (the
// JPEG decoder, the oneDNN plan's run) queue their work and reject with a message the same way.
// Header-only, so an addon built without native/shared/napi_args.cc (the JPEG decoder) can use it.
#pragma once

#include <node_api.h>

#include <string>

namespace simtrip {

// Queues `execute` on libuv's pool with `data`, then `complete` on the main thread, which settles
// the returned promise through *deferred and deletes *work.
inline napi_value queuePromiseWork(napi_env env, const char *name, napi_async_execute_callback execute, napi_async_complete_callback complete,
                                   void *data, napi_deferred *deferred, napi_async_work *work) {
  napi_value promise, resource;
  napi_create_promise(env, deferred, &promise);
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &resource);
  napi_create_async_work(env, nullptr, resource, execute, complete, data, work);
  napi_queue_async_work(env, *work);
  return promise;
}

// Rejects the promise with an Error whose message is `message`.
inline void rejectWithMessage(napi_env env, napi_deferred deferred, const std::string &message) {
  napi_value msg, err;
  napi_create_string_utf8(env, message.c_str(), message.size(), &msg);
  napi_create_error(env, nullptr, msg, &err);
  napi_reject_deferred(env, deferred, err);
}

}  // namespace simtrip
