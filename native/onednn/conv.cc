// Convolutions (forward, backward data, backward weights) on tfjs' NHWC activations and HWIO filters.
//
// Activations stay in the caller's NHWC buffers: the AVX2/AVX-512 kernels of oneDNN 2.x run on nhwc
// directly, so reordering a whole batch per call would cost more than it saves. The exception is a
// conv where Winograd pays (winogradPays, common.h): its kernel needs blocked activations, and on
// ResNet-18 at 32 px its 3x3 convs gain more than the reorders cost (training step 15 % faster).
// Filters are small and change every step, so they are reordered into whatever blocked layout the
// primitive prefers on each call; the reordered copy lives in a buffer owned by the cached entry.
#include <functional>
#include <memory>
#include <unordered_map>

#include "common.h"

namespace simtrip {

using dnnl::memory;
using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;

namespace {

// Int32Array layout shared with src/engine/onednn/conv_params.ts.
enum P { N, IH, IW, IC, OH, OW, OC, KH, KW, SH, SW, DH, DW, PT, PL, PB, PR, RELU, HAS_BIAS, COUNT };

struct ConvGeometry {
  int64_t p[COUNT];
  memory::desc src, weights, dst, bias;
  // With Winograd the primitive picks the activations' layout (`any`); the bridges reorder to NHWC.
  bool winograd = false;
  memory::desc primitiveSrc, primitiveDst;
  memory::dims strides, dilations, padL, padR;

  explicit ConvGeometry(const int32_t *raw) {
    for (int i = 0; i < COUNT; i++) p[i] = raw[i];
    for (int i = N; i <= PR; i++) {
      if (p[i] < 0) throw ArgError("conv: negative geometry parameter");
    }
    src = memory::desc({p[N], p[IC], p[IH], p[IW]}, dt::f32, tag::nhwc);
    dst = memory::desc({p[N], p[OC], p[OH], p[OW]}, dt::f32, tag::nhwc);
    weights = memory::desc({p[OC], p[IC], p[KH], p[KW]}, dt::f32, tag::hwio);
    bias = memory::desc({p[OC]}, dt::f32, tag::x);
    strides = {p[SH], p[SW]};
    // tfjs counts dilation from 1 (no gap), oneDNN from 0.
    dilations = {p[DH] - 1, p[DW] - 1};
    padL = {p[PT], p[PL]};
    padR = {p[PB], p[PR]};
    winograd = winogradPays(true, p[KH], p[KW], p[SH], p[SW], p[DH] != 1 || p[DW] != 1, p[IC], p[N], p[OH], p[OW]);
    primitiveSrc = winograd ? memory::desc({p[N], p[IC], p[IH], p[IW]}, dt::f32, tag::any) : src;
    primitiveDst = winograd ? memory::desc({p[N], p[OC], p[OH], p[OW]}, dt::f32, tag::any) : dst;
  }

  void useDirect() {
    winograd = false;
    primitiveSrc = src;
    primitiveDst = dst;
  }

  dnnl::algorithm algorithm() const { return winograd ? dnnl::algorithm::convolution_winograd : dnnl::algorithm::convolution_direct; }

  size_t srcSize() const { return p[N] * p[IH] * p[IW] * p[IC]; }
  size_t dstSize() const { return p[N] * p[OH] * p[OW] * p[OC]; }
  size_t weightsSize() const { return p[KH] * p[KW] * p[IC] * p[OC]; }
  memory::desc anyWeights() const { return memory::desc({p[OC], p[IC], p[KH], p[KW]}, dt::f32, tag::any); }

  dnnl::convolution_forward::primitive_desc forwardPd(dnnl::prop_kind kind, bool withBias, bool relu) const {
    dnnl::convolution_forward::desc d =
        withBias ? dnnl::convolution_forward::desc(kind, algorithm(), primitiveSrc, anyWeights(), bias, primitiveDst, strides, dilations, padL, padR)
                 : dnnl::convolution_forward::desc(kind, algorithm(), primitiveSrc, anyWeights(), primitiveDst, strides, dilations, padL, padR);
    dnnl::primitive_attr attr;
    if (relu) {
      dnnl::post_ops ops;
      ops.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
      attr.set_post_ops(ops);
    }
    return dnnl::convolution_forward::primitive_desc(d, attr, cpuEngine());
  }
};

std::string keyOf(char kind, const int32_t *raw) {
  // The mode is part of the key: an entry made before setWinograd keeps its algorithm.
  std::string key(1, kind);
  key.push_back(winogradMode().training ? 'w' : 'd');
  key.append(reinterpret_cast<const char *>(raw), sizeof(int32_t) * COUNT);
  return key;
}

// A reorder between a user layout and a primitive layout, skipped when they already agree.
struct LayoutBridge {
  bool needed = false;
  memory::desc user;
  memory inner;
  dnnl::reorder toInner, toUser;

  LayoutBridge(const memory::desc &userMd, const memory::desc &innerMd) : user(userMd) {
    needed = userMd != innerMd;
    if (!needed) return;
    inner = memory(innerMd, cpuEngine());
    toInner = dnnl::reorder(dnnl::reorder::primitive_desc(cpuEngine(), userMd, cpuEngine(), innerMd));
    toUser = dnnl::reorder(dnnl::reorder::primitive_desc(cpuEngine(), innerMd, cpuEngine(), userMd));
  }

  // Memory the primitive should read; copies in from the user buffer when layouts differ.
  memory in(float *userData) {
    memory userMem(user, cpuEngine(), userData);
    if (!needed) return userMem;
    toInner.execute(cpuStream(), userMem, inner);
    return inner;
  }

  // Memory the primitive should write; call `out` afterwards to copy it back.
  memory target(float *userData) { return needed ? inner : memory(user, cpuEngine(), userData); }

  void out(float *userData) {
    if (!needed) return;
    memory userMem(user, cpuEngine(), userData);
    toUser.execute(cpuStream(), inner, userMem);
  }
};

struct ForwardEntry {
  dnnl::convolution_forward::primitive_desc pd;
  dnnl::convolution_forward prim;
  LayoutBridge src, weights, dst;
  ForwardEntry(const ConvGeometry &g, bool withBias, bool relu)
      : pd(g.forwardPd(dnnl::prop_kind::forward_training, withBias, relu)),
        prim(pd),
        src(g.src, pd.src_desc()),
        weights(g.weights, pd.weights_desc()),
        dst(g.dst, pd.dst_desc()) {}
};

struct BackwardDataEntry {
  dnnl::convolution_backward_data::primitive_desc pd;
  dnnl::convolution_backward_data prim;
  LayoutBridge diffDst, weights, diffSrc;
  static dnnl::convolution_backward_data::primitive_desc makePd(const ConvGeometry &g) {
    dnnl::convolution_backward_data::desc d(g.algorithm(), g.primitiveSrc, g.anyWeights(), g.primitiveDst,
                                            g.strides, g.dilations, g.padL, g.padR);
    return dnnl::convolution_backward_data::primitive_desc(
        d, cpuEngine(), g.forwardPd(dnnl::prop_kind::forward_training, false, false));
  }
  explicit BackwardDataEntry(const ConvGeometry &g)
      : pd(makePd(g)),
        prim(pd),
        diffDst(g.dst, pd.diff_dst_desc()),
        weights(g.weights, pd.weights_desc()),
        diffSrc(g.src, pd.diff_src_desc()) {}
};

struct BackwardWeightsEntry {
  dnnl::convolution_backward_weights::primitive_desc pd;
  dnnl::convolution_backward_weights prim;
  LayoutBridge src, diffDst, diffWeights;
  static dnnl::convolution_backward_weights::primitive_desc makePd(const ConvGeometry &g) {
    dnnl::convolution_backward_weights::desc d(g.algorithm(), g.primitiveSrc, g.anyWeights(), g.primitiveDst,
                                               g.strides, g.dilations, g.padL, g.padR);
    return dnnl::convolution_backward_weights::primitive_desc(
        d, cpuEngine(), g.forwardPd(dnnl::prop_kind::forward_training, false, false));
  }
  explicit BackwardWeightsEntry(const ConvGeometry &g)
      : pd(makePd(g)),
        prim(pd),
        src(g.src, pd.src_desc()),
        diffDst(g.dst, pd.diff_dst_desc()),
        diffWeights(g.weights, pd.diff_weights_desc()) {}
};

// Training uses a handful of fixed shapes; the bound only guards against pathological callers.
template <typename Entry>
Entry &cached(std::unordered_map<std::string, std::unique_ptr<Entry>> &cache, const std::string &key,
              const std::function<std::unique_ptr<Entry>()> &make) {
  auto it = cache.find(key);
  if (it != cache.end()) return *it->second;
  if (cache.size() >= 512) cache.clear();
  return *cache.emplace(key, make()).first->second;
}

std::unordered_map<std::string, std::unique_ptr<ForwardEntry>> forwardCache;
std::unordered_map<std::string, std::unique_ptr<BackwardDataEntry>> backwardDataCache;
std::unordered_map<std::string, std::unique_ptr<BackwardWeightsEntry>> backwardWeightsCache;

// The entry with Winograd where it pays and oneDNN has a kernel for it; otherwise the direct conv.
template <typename Entry, typename... Args>
std::unique_ptr<Entry> makeEntry(ConvGeometry g, Args... args) {
  if (g.winograd) {
    try {
      return std::make_unique<Entry>(g, args...);
    } catch (const dnnl::error &) {
      g.useDirect();
    }
  }
  return std::make_unique<Entry>(g, args...);
}

ForwardEntry &forwardEntry(const int32_t *raw) {
  return cached<ForwardEntry>(forwardCache, keyOf('f', raw), [raw] {
    ConvGeometry g(raw);
    return makeEntry<ForwardEntry>(g, g.p[HAS_BIAS] != 0, g.p[RELU] != 0);
  });
}

BackwardDataEntry &backwardDataEntry(const int32_t *raw) {
  return cached<BackwardDataEntry>(backwardDataCache, keyOf('d', raw), [raw] { return makeEntry<BackwardDataEntry>(ConvGeometry(raw)); });
}

BackwardWeightsEntry &backwardWeightsEntry(const int32_t *raw) {
  return cached<BackwardWeightsEntry>(backwardWeightsCache, keyOf('w', raw), [raw] { return makeEntry<BackwardWeightsEntry>(ConvGeometry(raw)); });
}

}  // namespace

// (x, filter, bias|null, out, params)
void convForward(napi_env env, napi_value *args, size_t argc) {
  if (argc < 5) throw ArgError("convForward: expected 5 arguments");
  I32View p = i32Arg(env, args[4], "params", COUNT);
  ConvGeometry g(p.data);
  F32View x = f32Arg(env, args[0], "x", g.srcSize());
  F32View w = f32Arg(env, args[1], "filter", g.weightsSize());
  F32View b = g.p[HAS_BIAS] ? f32Arg(env, args[2], "bias", g.p[OC]) : F32View{};
  F32View y = f32Arg(env, args[3], "out", g.dstSize());

  ForwardEntry &e = forwardEntry(p.data);
  std::unordered_map<int, memory> io = {
      {DNNL_ARG_SRC, e.src.in(x.data)},
      {DNNL_ARG_WEIGHTS, e.weights.in(w.data)},
      {DNNL_ARG_DST, e.dst.target(y.data)},
  };
  if (b.data) io[DNNL_ARG_BIAS] = memory(g.bias, cpuEngine(), b.data);
  e.prim.execute(cpuStream(), io);
  e.dst.out(y.data);
  cpuStream().wait();
}

// (dy, filter, dxOut, params)
void convBackwardData(napi_env env, napi_value *args, size_t argc) {
  if (argc < 4) throw ArgError("convBackwardData: expected 4 arguments");
  I32View p = i32Arg(env, args[3], "params", COUNT);
  ConvGeometry g(p.data);
  F32View dy = f32Arg(env, args[0], "dy", g.dstSize());
  F32View w = f32Arg(env, args[1], "filter", g.weightsSize());
  F32View dx = f32Arg(env, args[2], "out", g.srcSize());

  BackwardDataEntry &e = backwardDataEntry(p.data);
  e.prim.execute(cpuStream(), {
                                  {DNNL_ARG_DIFF_DST, e.diffDst.in(dy.data)},
                                  {DNNL_ARG_WEIGHTS, e.weights.in(w.data)},
                                  {DNNL_ARG_DIFF_SRC, e.diffSrc.target(dx.data)},
                              });
  e.diffSrc.out(dx.data);
  cpuStream().wait();
}

// (x, dy, dwOut, params)
void convBackwardWeights(napi_env env, napi_value *args, size_t argc) {
  if (argc < 4) throw ArgError("convBackwardWeights: expected 4 arguments");
  I32View p = i32Arg(env, args[3], "params", COUNT);
  ConvGeometry g(p.data);
  F32View x = f32Arg(env, args[0], "x", g.srcSize());
  F32View dy = f32Arg(env, args[1], "dy", g.dstSize());
  F32View dw = f32Arg(env, args[2], "out", g.weightsSize());

  BackwardWeightsEntry &e = backwardWeightsEntry(p.data);
  e.prim.execute(cpuStream(), {
                                  {DNNL_ARG_SRC, e.src.in(x.data)},
                                  {DNNL_ARG_DIFF_DST, e.diffDst.in(dy.data)},
                                  {DNNL_ARG_DIFF_WEIGHTS, e.diffWeights.target(dw.data)},
                              });
  e.diffWeights.out(dw.data);
  cpuStream().wait();
}

// (params) -> which oneDNN implementation each direction picked, for tuning and diagnostics.
std::string convImplInfo(napi_env env, napi_value *args, size_t argc) {
  if (argc < 1) throw ArgError("convImpl: expected params");
  I32View p = i32Arg(env, args[0], "params", COUNT);
  ForwardEntry &f = forwardEntry(p.data);
  BackwardDataEntry &d = backwardDataEntry(p.data);
  BackwardWeightsEntry &w = backwardWeightsEntry(p.data);
  auto reorders = [](const LayoutBridge &a, const LayoutBridge &b, const LayoutBridge &c) {
    return std::string(" [reorder ") + (a.needed ? "1" : "0") + (b.needed ? "1" : "0") + (c.needed ? "1" : "0") + "]";
  };
  return std::string("fwd=") + f.pd.impl_info_str() + reorders(f.src, f.weights, f.dst) +
         " bwd_data=" + d.pd.impl_info_str() + reorders(d.diffDst, d.weights, d.diffSrc) +
         " bwd_weights=" + w.pd.impl_info_str() + reorders(w.src, w.diffDst, w.diffWeights);
}

}  // namespace simtrip
