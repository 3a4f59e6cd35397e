// JPEG straight to a small RGB square, off the main thread: libjpeg-turbo decodes at the coarsest DCT
// scale (1/2, 1/4, 1/8) that still leaves at least the target's pixels, so at 32 px a 600x450 photo
// costs an entropy decode and a 75x57 inverse transform; resample.cc takes it the rest of the way.
//
// Anything this path does not reproduce exactly as sharp would (CMYK, an embedded ICC profile, a
// warning such as a truncated file or corrupt data) is refused with the reason; the caller then hands
// the file to sharp, which decides. So a file decodes here only when both paths mean the same pixels.
// jpeglib.h uses size_t and FILE without including their headers.
#include <cstddef>
#include <cstdio>

#include <jpeglib.h>
#include <node_api.h>

#include "../shared/promise_work.h"

#include <algorithm>
#include <cmath>
#include <csetjmp>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "resample.h"

namespace simtrip {

namespace {

struct Failure {
  jpeg_error_mgr mgr;
  jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

void onError(j_common_ptr c) {
  Failure *f = reinterpret_cast<Failure *>(c->err);
  c->err->format_message(c, f->message);
  std::longjmp(f->jump, 1);
}

// libjpeg calls warnings (premature end of data, extraneous bytes) recoverable and fills in grey;
// sharp with failOn 'error' rejects such files, so here a warning ends the decode too.
void onMessage(j_common_ptr c, int level) {
  if (level < 0) onError(c);
}

bool hasIccProfile(j_decompress_ptr c) {
  for (jpeg_saved_marker_ptr m = c->marker_list; m; m = m->next) {
    if (m->marker == JPEG_APP0 + 2 && m->data_length >= 12 && std::memcmp(m->data, "ICC_PROFILE", 12) == 0) return true;
  }
  return false;
}

struct Request {
  // Input, referenced (not copied) while the work runs.
  napi_ref inputRef = nullptr;
  const uint8_t *input = nullptr;
  size_t inputBytes = 0;
  int outW = 0, outH = 0;
  bool cover = true;
  Kernel kernel = Kernel::Lanczos3;
  // Output.
  std::vector<uint8_t> pixels;
  int srcW = 0, srcH = 0, channels = 0, scaleDenom = 1;
  std::string error;
  napi_deferred deferred = nullptr;
  napi_async_work work = nullptr;
};

// The part of the source the output shows: all of it ('fill'), or for 'cover' the crop sharp takes. Sharp
// scales by the smaller factor, rounds the scaled size (each axis then has its own exact factor), and
// crops (excess + 1) / 2 scaled pixels off the left and top: up to half an output pixel off the exact
// centre (at 32 px from 600x450, from source column 83.7 instead of 75), kept so that both decoders cut
// the same square.
void sourceWindows(const Request &r, Window &x, Window &y) {
  x = {0, static_cast<double>(r.srcW)};
  y = {0, static_cast<double>(r.srcH)};
  if (!r.cover) return;
  const double f = std::min(static_cast<double>(r.srcW) / r.outW, static_cast<double>(r.srcH) / r.outH);
  const long scaledW = std::lround(r.srcW / f), scaledH = std::lround(r.srcH / f);
  const double fx = static_cast<double>(r.srcW) / scaledW, fy = static_cast<double>(r.srcH) / scaledH;
  x = {static_cast<double>((scaledW - r.outW + 1) / 2) * fx, r.outW * fx};
  y = {static_cast<double>((scaledH - r.outH + 1) / 2) * fy, r.outH * fy};
}

// The coarsest power-of-two DCT scale at which the window still has as many pixels as the output.
int dctScale(const Window &x, const Window &y, int outW, int outH) {
  int denom = 8;
  while (denom > 1 && (x.length / denom < outW || y.length / denom < outH)) denom /= 2;
  return denom;
}

void decode(Request &r) {
  jpeg_decompress_struct c;
  Failure failure;
  c.err = jpeg_std_error(&failure.mgr);
  failure.mgr.error_exit = onError;
  failure.mgr.emit_message = onMessage;
  // Locals changed after setjmp must not live in registers across the longjmp.
  std::vector<uint8_t> scaled;
  if (setjmp(failure.jump)) {
    r.error = failure.message;
    jpeg_destroy_decompress(&c);
    return;
  }
  jpeg_create_decompress(&c);
  jpeg_mem_src(&c, r.input, static_cast<unsigned long>(r.inputBytes));
  jpeg_save_markers(&c, JPEG_APP0 + 2, 0xFFFF);
  jpeg_read_header(&c, TRUE);
  r.srcW = static_cast<int>(c.image_width);
  r.srcH = static_cast<int>(c.image_height);
  r.channels = c.num_components;
  if (c.jpeg_color_space != JCS_GRAYSCALE && c.jpeg_color_space != JCS_YCbCr && c.jpeg_color_space != JCS_RGB) {
    r.error = "colour space other than grey, YCbCr or RGB (CMYK?)";
  } else if (hasIccProfile(&c)) {
    r.error = "embedded ICC profile (sharp converts it to sRGB)";
  }
  if (!r.error.empty()) {
    jpeg_destroy_decompress(&c);
    return;
  }
  Window x, y;
  sourceWindows(r, x, y);
  r.scaleDenom = dctScale(x, y, r.outW, r.outH);
  c.scale_num = 1;
  c.scale_denom = static_cast<unsigned>(r.scaleDenom);
  c.out_color_space = JCS_RGB;
  jpeg_start_decompress(&c);
  const int w = static_cast<int>(c.output_width), h = static_cast<int>(c.output_height);
  scaled.resize(static_cast<size_t>(w) * h * 3);
  while (c.output_scanline < c.output_height) {
    JSAMPROW row = scaled.data() + static_cast<size_t>(c.output_scanline) * w * 3;
    jpeg_read_scanlines(&c, &row, 1);
  }
  jpeg_finish_decompress(&c);
  jpeg_destroy_decompress(&c);
  // Scaled pixel i is source pixels [i * denom, (i + 1) * denom): the last one of an axis not divisible
  // by denom covers the encoder's padding too, so the windows map by 1 / denom, not by w / srcW.
  const double s = 1.0 / r.scaleDenom;
  r.pixels.resize(static_cast<size_t>(r.outW) * r.outH * 3);
  resampleRGB(scaled.data(), w, h, {x.start * s, x.length * s}, {y.start * s, y.length * s}, r.pixels.data(), r.outW,
              r.outH, r.kernel);
}

void setInt(napi_env env, napi_value obj, const char *name, int v) {
  napi_value n;
  napi_create_int32(env, v, &n);
  napi_set_named_property(env, obj, name, n);
}

void execute(napi_env, void *data) { decode(*static_cast<Request *>(data)); }

void complete(napi_env env, napi_status, void *data) {
  std::unique_ptr<Request> r(static_cast<Request *>(data));
  napi_delete_reference(env, r->inputRef);
  napi_delete_async_work(env, r->work);
  if (!r->error.empty()) {
    rejectWithMessage(env, r->deferred, r->error);
    return;
  }
  napi_value obj, buf;
  void *copy = nullptr;
  napi_create_object(env, &obj);
  napi_create_buffer_copy(env, r->pixels.size(), r->pixels.data(), &copy, &buf);
  napi_set_named_property(env, obj, "data", buf);
  setInt(env, obj, "width", r->outW);
  setInt(env, obj, "height", r->outH);
  setInt(env, obj, "srcWidth", r->srcW);
  setInt(env, obj, "srcHeight", r->srcH);
  setInt(env, obj, "channels", r->channels);
  setInt(env, obj, "scaleDenom", r->scaleDenom);
  napi_resolve_deferred(env, r->deferred, obj);
}

napi_value throwType(napi_env env, const char *message) {
  napi_throw_type_error(env, nullptr, message);
  return nullptr;
}

int32_t intArg(napi_env env, napi_value v) {
  int32_t out = 0;
  napi_get_value_int32(env, v, &out);
  return out;
}

// decodeJpeg(bytes: Uint8Array, width, height, cover: boolean, kernel: 0..4) -> Promise<{data, width,
// height, srcWidth, srcHeight, channels, scaleDenom}>; rejects with the reason this path declines.
napi_value decodeJpeg(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value args[5];
  napi_get_cb_info(env, info, &argc, args, nullptr, nullptr);
  if (argc < 5) return throwType(env, "decodeJpeg: expected (bytes, width, height, cover, kernel)");
  bool isTyped = false;
  napi_is_typedarray(env, args[0], &isTyped);
  if (!isTyped) return throwType(env, "decodeJpeg: bytes must be a Uint8Array");
  auto r = std::make_unique<Request>();
  napi_typedarray_type type;
  size_t length = 0;
  void *bytes = nullptr;
  napi_get_typedarray_info(env, args[0], &type, &length, &bytes, nullptr, nullptr);
  if (type != napi_uint8_array) return throwType(env, "decodeJpeg: bytes must be a Uint8Array");
  r->input = static_cast<const uint8_t *>(bytes);
  r->inputBytes = length;
  r->outW = intArg(env, args[1]);
  r->outH = intArg(env, args[2]);
  napi_get_value_bool(env, args[3], &r->cover);
  const int kernel = intArg(env, args[4]);
  if (r->outW < 1 || r->outH < 1 || r->outW > 65535 || r->outH > 65535) return throwType(env, "decodeJpeg: width and height must be 1..65535");
  if (kernel < 0 || kernel > 4) return throwType(env, "decodeJpeg: kernel must be 0..4");
  r->kernel = static_cast<Kernel>(kernel);
  napi_create_reference(env, args[0], 1, &r->inputRef);
  napi_value promise = queuePromiseWork(env, "simtrip.decodeJpeg", execute, complete, r.get(), &r->deferred, &r->work);
  r.release();
  return promise;
}

napi_value libraryInfo(napi_env env, napi_callback_info) {
  napi_value obj, version;
#ifdef LIBJPEG_TURBO_VERSION
#define SIMTRIP_STR2(x) #x
#define SIMTRIP_STR(x) SIMTRIP_STR2(x)
  const char *v = "libjpeg-turbo " SIMTRIP_STR(LIBJPEG_TURBO_VERSION);
#else
  const char *v = "libjpeg (not turbo)";
#endif
  napi_create_object(env, &obj);
  napi_create_string_utf8(env, v, NAPI_AUTO_LENGTH, &version);
  napi_set_named_property(env, obj, "version", version);
  setInt(env, obj, "jpegLibVersion", JPEG_LIB_VERSION);
  return obj;
}

napi_value init(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      {"info", nullptr, libraryInfo, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"decodeJpeg", nullptr, decodeJpeg, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}

}  // namespace

}  // namespace simtrip

NAPI_MODULE(NODE_GYP_MODULE_NAME, simtrip::init)
