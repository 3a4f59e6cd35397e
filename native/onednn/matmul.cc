// Batched matrix multiply with optional bias and relu, for BatchMatMul and _FusedMatMul.
//
// Transposes are expressed as strides on the caller's row-major buffers, so no operand is copied.
#include <memory>
#include <unordered_map>

#include "common.h"

namespace simtrip {

using dnnl::memory;
using dt = dnnl::memory::data_type;

namespace {

// Int32Array layout shared with src/engine/onednn/kernels/matmul.ts.
enum P { BATCH_A, BATCH_B, M, N, K, TRANS_A, TRANS_B, RELU, HAS_BIAS, COUNT };

struct MatmulEntry {
  memory::desc a, b, c, bias;
  dnnl::matmul prim;

  explicit MatmulEntry(const int64_t *p) {
    const int64_t batch = std::max(p[BATCH_A], p[BATCH_B]);
    a = p[TRANS_A] ? memory::desc({p[BATCH_A], p[M], p[K]}, dt::f32, memory::dims{p[K] * p[M], 1, p[M]})
                   : memory::desc({p[BATCH_A], p[M], p[K]}, dt::f32, memory::dims{p[M] * p[K], p[K], 1});
    b = p[TRANS_B] ? memory::desc({p[BATCH_B], p[K], p[N]}, dt::f32, memory::dims{p[N] * p[K], 1, p[K]})
                   : memory::desc({p[BATCH_B], p[K], p[N]}, dt::f32, memory::dims{p[K] * p[N], p[N], 1});
    c = memory::desc({batch, p[M], p[N]}, dt::f32, memory::dims{p[M] * p[N], p[N], 1});
    if (p[HAS_BIAS]) bias = memory::desc({1, 1, p[N]}, dt::f32, memory::dims{p[N], p[N], 1});
    dnnl::primitive_attr attr;
    if (p[RELU]) {
      dnnl::post_ops ops;
      ops.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
      attr.set_post_ops(ops);
    }
    dnnl::matmul::desc d = p[HAS_BIAS] ? dnnl::matmul::desc(a, b, bias, c) : dnnl::matmul::desc(a, b, c);
    prim = dnnl::matmul(dnnl::matmul::primitive_desc(d, attr, cpuEngine()));
  }
};

std::unordered_map<std::string, std::unique_ptr<MatmulEntry>> cache;

}  // namespace

// (a, b, bias|null, out, params)
void matmul(napi_env env, napi_value *args, size_t argc) {
  if (argc < 5) throw ArgError("matmul: expected 5 arguments");
  I32View raw = i32Arg(env, args[4], "params", COUNT);
  int64_t p[COUNT];
  for (int i = 0; i < COUNT; i++) {
    p[i] = raw.data[i];
    if (p[i] < 0) throw ArgError("matmul: negative parameter");
  }
  if (p[BATCH_A] != p[BATCH_B] && p[BATCH_A] != 1 && p[BATCH_B] != 1) {
    throw ArgError("matmul: batch sizes must match or one must be 1");
  }
  const size_t batch = std::max(p[BATCH_A], p[BATCH_B]);
  F32View a = f32Arg(env, args[0], "a", p[BATCH_A] * p[M] * p[K]);
  F32View b = f32Arg(env, args[1], "b", p[BATCH_B] * p[K] * p[N]);
  F32View bias = p[HAS_BIAS] ? f32Arg(env, args[2], "bias", p[N]) : F32View{};
  F32View c = f32Arg(env, args[3], "out", batch * p[M] * p[N]);
  if (batch * p[M] * p[N] == 0) return;
  if (p[K] == 0) {
    // oneDNN rejects empty reductions; the product is then just the (relu of the) bias.
    for (size_t i = 0; i < c.length; i++) {
      float v = bias.data ? bias.data[i % p[N]] : 0.f;
      c.data[i] = p[RELU] && v < 0.f ? 0.f : v;
    }
    return;
  }

  std::string key(reinterpret_cast<const char *>(raw.data), sizeof(int32_t) * COUNT);
  auto it = cache.find(key);
  if (it == cache.end()) {
    if (cache.size() >= 512) cache.clear();
    it = cache.emplace(key, std::make_unique<MatmulEntry>(p)).first;
  }
  MatmulEntry &e = *it->second;
  std::unordered_map<int, memory> io = {
      {DNNL_ARG_SRC, memory(e.a, cpuEngine(), a.data)},
      {DNNL_ARG_WEIGHTS, memory(e.b, cpuEngine(), b.data)},
      {DNNL_ARG_DST, memory(e.c, cpuEngine(), c.data)},
  };
  if (bias.data) io[DNNL_ARG_BIAS] = memory(e.bias, cpuEngine(), bias.data);
  e.prim.execute(cpuStream(), io);
  cpuStream().wait();
}

}  // namespace simtrip
