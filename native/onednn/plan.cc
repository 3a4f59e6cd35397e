// The inference plan: an encoder's fused inference graph (src/model/inference_graph.ts) compiled once
// into oneDNN primitives and run micro-batch by micro-batch.
//
// Why a plan rather than the training kernels: the tfjs path calls one kernel per op on NHWC buffers
// it allocates anew, reorders every filter on every call and applies BatchNorm, ReLU and the residual
// add as separate passes over memory. Here, once per plan:
//  - every conv (BatchNorm already folded in by the graph) is created with format_tag::any, so oneDNN
//    picks its preferred blocked layouts (nChw16c on AVX-512), and its kernel is reordered into that
//    layout once and kept;
//  - ReLU and the residual add are post-ops of the conv (eltwise, and `sum` onto the shortcut's buffer
//    in place), so each activation is written once and read once per consumer;
//  - activations stay in the layout the producing primitive chose; a reorder is inserted only where a
//    consumer insists on another one (the NHWC images at the input, the pooled features at the end);
//  - per micro-batch size, every buffer is allocated once, shared by values whose lifetimes do not
//    overlap, and all primitives share one user-managed scratchpad: nothing allocates while running.
// Micro-batches keep a layer's activations near the cache; a batch of another size (the remainder of
// a call) gets its own set of primitives, built when first needed and kept.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common.h"
#include "group_norm.h"
#include "promise_work.h"

namespace simtrip {

using dnnl::memory;
using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;

namespace {

// Int32Array layout of one op, shared with src/engine/onednn/plan_encoding.ts.
enum Kind { CONV, BATCH_NORM, GROUP_NORM, ADD, RELU, MAX_POOL, GLOBAL_AVG_POOL, KIND_COUNT };
enum Field { KIND, IN, OUT, AUX, RELU_FLAG, P0, P1, P2, P3, P4, P5, P6, OP_INTS };
// conv: P0..P5 = out channels, in channels, kernel h, kernel w, stride, pad; AUX = summed value or -1.
// batch/group norm: P0 = channels, P1 = groups. add: IN, AUX = operands. max-pool: P0..P3 = kernel,
// stride, pad, zero padding (0/1).

constexpr int kInput = 0;

struct OpSpec {
  int32_t f[OP_INTS];
  float eps = 0.f;
  std::vector<std::vector<float>> params;
  int kind() const { return f[KIND]; }
};

struct Extent {
  int64_t c, h, w;
};

memory::desc anyDesc(const memory::dims &dims) { return memory::desc(dims, dt::f32, tag::any); }

// The plain or channel-blocked tag `md` is in (the ones our own loops and padded copies understand).
std::optional<tag> knownTag(const memory::desc &md) {
  for (tag t : {tag::nChw16c, tag::nChw8c, tag::nhwc, tag::nchw}) {
    if (md == memory::desc(md.dims(), dt::f32, t)) return t;
  }
  return std::nullopt;
}

int64_t blockOf(tag t, int64_t channels) {
  switch (t) {
    case tag::nChw16c: return 16;
    case tag::nChw8c: return 8;
    case tag::nhwc: return channels;
    default: return 0;
  }
}

// The ops and parameters as given, with each value's extent derived from the image size.
struct Graph {
  std::vector<OpSpec> ops;
  std::vector<Extent> extents;  // per value; value 0 is the images
  int64_t imageSize;

  // Every op's output extent, each checked against its inputs so a malformed graph from JavaScript is
  // an error naming the op rather than a primitive reading out of bounds.
  void deriveExtents() {
    extents.assign(ops.size() + 1, Extent{});
    extents[kInput] = {3, imageSize, imageSize};
    for (size_t i = 0; i < ops.size(); i++) extents[i + 1] = checkedExtent(i);
    if (ops.empty() || ops.back().kind() != GLOBAL_AVG_POOL) throw ArgError("inference plan: the graph must end in a global average pool");
  }

  // Op i's output extent, from the extents of the values before it.
  Extent checkedExtent(size_t i) const {
    const OpSpec &op = ops[i];
    const std::string where = "inference plan op " + std::to_string(i) + ": ";
    if (op.kind() < 0 || op.kind() >= KIND_COUNT) throw ArgError(where + "unknown kind " + std::to_string(op.kind()));
    if (op.f[OUT] != static_cast<int32_t>(i + 1)) throw ArgError(where + "outputs must be numbered in order");
    auto read = [&](int32_t v) -> const Extent & {
      if (v < 0 || v > static_cast<int32_t>(i)) throw ArgError(where + "reads value " + std::to_string(v) + " before it exists");
      return extents[v];
    };
    const Extent &x = read(op.f[IN]);
    Extent y{};
    auto windowed = [&](int64_t kernel, int64_t stride, int64_t pad) {
      const int64_t oh = (x.h + 2 * pad - kernel) / stride + 1, ow = (x.w + 2 * pad - kernel) / stride + 1;
      if (stride <= 0 || oh <= 0 || ow <= 0) throw ArgError(where + "the window does not fit the " + std::to_string(x.h) + "x" + std::to_string(x.w) + " input");
      return std::make_pair(oh, ow);
    };
    auto expectParams = [&](size_t count, size_t length) {
      if (op.params.size() != count) throw ArgError(where + "expected " + std::to_string(count) + " parameter arrays");
      for (const auto &p : op.params) {
        if (p.size() != length) throw ArgError(where + "a parameter array has " + std::to_string(p.size()) + " values, expected " + std::to_string(length));
      }
    };
    switch (op.kind()) {
      case CONV: {
        if (op.f[P1] != x.c) throw ArgError(where + "the conv expects " + std::to_string(op.f[P1]) + " input channels, got " + std::to_string(x.c));
        if (op.f[P2] != op.f[P3]) throw ArgError(where + "only square kernels are supported");
        auto [oh, ow] = windowed(op.f[P2], op.f[P4], op.f[P5]);
        y = {op.f[P0], oh, ow};
        if (op.params.size() != 2 || op.params[0].size() != static_cast<size_t>(op.f[P0]) * op.f[P1] * op.f[P2] * op.f[P3] ||
            op.params[1].size() != static_cast<size_t>(op.f[P0])) {
          throw ArgError(where + "conv weight/bias sizes do not match its shape");
        }
        if (op.f[AUX] >= 0) {
          const Extent &s = read(op.f[AUX]);
          if (s.c != y.c || s.h != y.h || s.w != y.w) throw ArgError(where + "the summed value's shape differs from the conv output");
        }
        break;
      }
      case BATCH_NORM:
      case GROUP_NORM:
        if (op.f[P0] != x.c) throw ArgError(where + "norm over " + std::to_string(op.f[P0]) + " channels, input has " + std::to_string(x.c));
        if (op.kind() == GROUP_NORM && (op.f[P1] <= 0 || x.c % op.f[P1] != 0)) throw ArgError(where + "channels do not split into the groups");
        expectParams(op.kind() == BATCH_NORM ? 4 : 2, x.c);
        y = x;
        break;
      case ADD: {
        const Extent &b = read(op.f[AUX]);
        if (b.c != x.c || b.h != x.h || b.w != x.w) throw ArgError(where + "adding values of different shapes");
        y = x;
        break;
      }
      case RELU:
        y = x;
        break;
      case MAX_POOL: {
        auto [oh, ow] = windowed(op.f[P0], op.f[P1], op.f[P2]);
        y = {x.c, oh, ow};
        break;
      }
      case GLOBAL_AVG_POOL:
        if (i + 1 != ops.size()) throw ArgError(where + "the global average pool must be the last op");
        y = {x.c, 1, 1};
        break;
    }
    return y;
  }

  int64_t featureDim() const { return extents.back().c; }
  int64_t imageFloats() const { return 3 * imageSize * imageSize; }

  // The last op reading each value (values read by nothing die where they are made).
  std::vector<int> lastUses() const {
    std::vector<int> last(extents.size(), -1);
    for (size_t i = 0; i < ops.size(); i++) {
      last[i + 1] = static_cast<int>(i);
      last[ops[i].f[IN]] = static_cast<int>(i);
      if ((ops[i].kind() == CONV || ops[i].kind() == ADD) && ops[i].f[AUX] >= 0) last[ops[i].f[AUX]] = static_cast<int>(i);
    }
    return last;
  }
};

// Conv kernels in the layouts their primitives asked for, shared by every micro-batch size.
class WeightCache {
 public:
  memory get(const Graph &g, size_t op, const memory::desc &want, dnnl::stream &stream) {
    auto &slot = cache_[op];
    for (auto &[md, mem] : slot) {
      if (md == want) return mem;
    }
    const OpSpec &spec = g.ops[op];
    memory::desc oihw({spec.f[P0], spec.f[P1], spec.f[P2], spec.f[P3]}, dt::f32, tag::oihw);
    memory user(oihw, cpuEngine(), const_cast<float *>(spec.params[0].data()));
    memory mine(want, cpuEngine());
    dnnl::reorder(user, mine).execute(stream, user, mine);
    stream.wait();
    slot.emplace_back(want, mine);
    return mine;
  }

 private:
  std::unordered_map<size_t, std::vector<std::pair<memory::desc, memory>>> cache_;
};

// Buffer indices for values, reused once a value is dead; the sizes only grow while the plan is
// built, and the memory is allocated once at the end.
class BufferPool {
 public:
  int take(size_t bytes) {
    int best = -1;
    for (int b : free_) {
      if (best < 0 || fits(b, bytes, best)) best = b;
    }
    if (best < 0) {
      sizes_.push_back(bytes);
      return static_cast<int>(sizes_.size()) - 1;
    }
    free_.erase(std::find(free_.begin(), free_.end(), best));
    sizes_[best] = std::max(sizes_[best], bytes);
    return best;
  }
  void release(int b) { free_.push_back(b); }
  // A buffer no value shares: its zeros (a pad border) are written once and stay.
  int takeZeroed(size_t bytes) {
    sizes_.push_back(bytes);
    zeroed_.push_back(static_cast<int>(sizes_.size()) - 1);
    return zeroed_.back();
  }
  void allocate() {
    for (size_t bytes : sizes_) {
      void *p = std::aligned_alloc(64, (std::max<size_t>(bytes, 64) + 63) / 64 * 64);
      if (!p) throw std::runtime_error("inference plan: out of memory allocating activations");
      data_.emplace_back(p, std::free);
    }
    for (int b : zeroed_) std::memset(data_[b].get(), 0, sizes_[b]);
  }
  void *data(int b) const { return data_[b].get(); }
  size_t totalBytes() const {
    size_t t = 0;
    for (size_t s : sizes_) t += s;
    return t;
  }

 private:
  // Prefer the smallest free buffer that already fits, else the largest one (least growth).
  bool fits(int candidate, size_t bytes, int best) const {
    const bool cFits = sizes_[candidate] >= bytes, bFits = sizes_[best] >= bytes;
    if (cFits != bFits) return cFits;
    return cFits ? sizes_[candidate] < sizes_[best] : sizes_[candidate] > sizes_[best];
  }
  std::vector<size_t> sizes_;
  std::vector<int> free_, zeroed_;
  std::vector<std::unique_ptr<void, void (*)(void *)>> data_;
};

struct Step {
  dnnl::primitive prim;
  std::unordered_map<int, memory> args;
  // Our own loop (GroupNorm) instead of a primitive.
  std::function<void()> custom;
};

// Primitives and buffers for one micro-batch size.
class Instance {
 public:
  Instance(const Graph &g, WeightCache &weights, dnnl::stream &stream, int64_t mb) : g_(g), weights_(weights), stream_(stream), mb_(mb) {
    buildSteps();
    bindBuffers();
  }

  void run(const float *images, float *out) {
    input_.set_data_handle(const_cast<float *>(images));
    output_.set_data_handle(out);
    for (Step &s : steps_) {
      if (s.custom) {
        stream_.wait();
        s.custom();
      } else {
        s.prim.execute(stream_, s.args);
      }
    }
    stream_.wait();
  }

  // One line per primitive: what it does and the implementation oneDNN picked.
  const std::string &info() const { return info_; }
  size_t bytes() const { return pool_.totalBytes() + scratchBytes_; }

 private:
  memory::dims dims(int v) const {
    const Extent &e = g_.extents[v];
    return {mb_, e.c, e.h, e.w};
  }

  // Activations in channel blocks of one vector register (nChw16c with AVX-512, nChw8c with AVX2):
  // measured on ResNet-18 at 32 px, oneDNN's direct jit convs on these beat the brgemm convs that
  // format_tag::any picks in oneDNN 2.6 (NHWC) by about 10 %. Channel counts that fill no whole block
  // are left to the primitive.
  memory::desc activationDesc(const memory::dims &d) const {
    static const int64_t block = [] {
      const dnnl::cpu_isa isa = dnnl::get_effective_cpu_isa();
      if (isa == dnnl::cpu_isa::avx512_core || isa == dnnl::cpu_isa::avx512_core_vnni || isa == dnnl::cpu_isa::avx512_core_bf16 ||
          isa == dnnl::cpu_isa::avx512_core_amx)
        return int64_t{16};
      if (isa == dnnl::cpu_isa::avx2 || isa == dnnl::cpu_isa::avx2_vnni) return int64_t{8};
      return int64_t{0};
    }();
    if (block == 0 || d[1] % block != 0) return anyDesc(d);
    return memory::desc(d, dt::f32, block == 16 ? tag::nChw16c : tag::nChw8c);
  }

  dnnl::primitive_attr attr(bool relu = false, bool sum = false) const {
    dnnl::primitive_attr a;
    a.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    dnnl::post_ops ops;
    // Order matters: (conv + shortcut), then ReLU, as in the residual block.
    if (sum) ops.append_sum(1.f);
    if (relu) ops.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
    a.set_post_ops(ops);
    return a;
  }

  // A memory whose buffer is assigned later; bindBuffers points it at the buffer.
  memory bound(const memory::desc &md, int buffer) {
    memory m(md, cpuEngine(), DNNL_MEMORY_NONE);
    bindings_.push_back({m, buffer});
    return m;
  }

  void makeValue(int v, const memory::desc &md) {
    md_[v] = md;
    buffer_[v] = pool_.take(md.get_size());
    mem_[v] = bound(md, buffer_[v]);
  }

  // Value v in layout `want`: itself, or a temporary copy reordered before the current op.
  memory as(int v, const memory::desc &want) {
    if (md_[v] == want) return mem_[v];
    const int b = pool_.take(want.get_size());
    temps_.push_back(b);
    memory copy = bound(want, b);
    add(dnnl::reorder::primitive_desc(cpuEngine(), md_[v], cpuEngine(), want), {{DNNL_ARG_FROM, mem_[v]}, {DNNL_ARG_TO, copy}},
        "reorder v" + std::to_string(v));
    return copy;
  }

  template <typename Pd>
  void add(const Pd &pd, std::unordered_map<int, memory> args, const std::string &what) {
    const size_t scratch = pd.scratchpad_desc().get_size();
    if (scratch > 0) needsScratch_.push_back(steps_.size());
    scratchBytes_ = std::max(scratchBytes_, scratch);
    info_ += what + ": " + pd.impl_info_str() + "\n";
    steps_.push_back({dnnl::primitive(pd.get()), std::move(args), nullptr});
  }

  void buildSteps() {
    const size_t values = g_.extents.size();
    md_.assign(values, memory::desc());
    mem_.assign(values, memory());
    buffer_.assign(values, -1);
    md_[kInput] = memory::desc(dims(kInput), dt::f32, tag::nhwc);
    input_ = memory(md_[kInput], cpuEngine(), DNNL_MEMORY_NONE);
    mem_[kInput] = input_;
    const std::vector<int> last = g_.lastUses();
    for (size_t i = 0; i < g_.ops.size(); i++) {
      const OpSpec &op = g_.ops[i];
      switch (op.kind()) {
        case CONV: conv(i, op); break;
        case BATCH_NORM: batchNorm(op); break;
        case GROUP_NORM: groupNorm(op); break;
        case ADD: addValues(op); break;
        case RELU: relu(op); break;
        case MAX_POOL: maxPool(op); break;
        case GLOBAL_AVG_POOL: globalAvgPool(op); break;
      }
      // Values dead after this op give their buffers back (an in-place sum has taken its over).
      for (size_t v = 1; v < values; v++) {
        if (last[v] == static_cast<int>(i) && buffer_[v] >= 0) {
          pool_.release(buffer_[v]);
          buffer_[v] = -1;
        }
      }
      for (int b : temps_) pool_.release(b);
      temps_.clear();
    }
  }

  void conv(size_t i, const OpSpec &op) {
    const int in = op.f[IN], out = op.f[OUT], sum = op.f[AUX];
    const memory::dims strides = {op.f[P4], op.f[P4]}, pad = {op.f[P5], op.f[P5]};
    const memory::desc bias({op.f[P0]}, dt::f32, tag::x);
    auto make = [&](const memory::desc &dst) {
      // The images' 3 channels fill no block: the first conv reads whatever layout it likes best.
      const memory::desc src = in == kInput ? anyDesc(dims(in)) : activationDesc(dims(in));
      auto withAlgorithm = [&](dnnl::algorithm algorithm) {
        dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference, algorithm, src, anyDesc({op.f[P0], op.f[P1], op.f[P2], op.f[P3]}),
                                          bias, dst, strides, pad, pad);
        return dnnl::convolution_forward::primitive_desc(d, attr(op.f[RELU_FLAG] != 0, sum >= 0), cpuEngine());
      };
      const memory::dims o = dims(out);
      if (winogradPays(false, op.f[P2], op.f[P3], op.f[P4], op.f[P4], false, op.f[P1], o[0], o[2], o[3])) {
        try {
          return withAlgorithm(dnnl::algorithm::convolution_winograd);
        } catch (const dnnl::error &) {
          // No Winograd kernel for this ISA or this conv: the direct one.
        }
      }
      return withAlgorithm(dnnl::algorithm::convolution_direct);
    };
    auto pd = make(activationDesc(dims(out)));
    // The sum post-op accumulates onto the shortcut's buffer, so the output must take its layout.
    if (sum >= 0 && pd.dst_desc() != md_[sum]) pd = make(md_[sum]);
    memory src = as(in, pd.src_desc());
    if (sum >= 0) {
      md_[out] = md_[sum];
      mem_[out] = mem_[sum];
      buffer_[out] = buffer_[sum];
      buffer_[sum] = -1;
    } else {
      makeValue(out, pd.dst_desc());
    }
    memory w = weights_.get(g_, i, pd.weights_desc(), stream_);
    memory b(bias, cpuEngine(), const_cast<float *>(op.params[1].data()));
    add(pd, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_BIAS, b}, {DNNL_ARG_DST, mem_[out]}},
        "conv " + std::to_string(op.f[P2]) + "x" + std::to_string(op.f[P3]) + "/" + std::to_string(op.f[P4]) + " " + std::to_string(op.f[P1]) + "->" +
            std::to_string(op.f[P0]) + (sum >= 0 ? " +sum" : "") + (op.f[RELU_FLAG] ? " +relu" : ""));
  }

  void batchNorm(const OpSpec &op) {
    const int in = op.f[IN], out = op.f[OUT];
    auto flags = dnnl::normalization_flags::use_global_stats | dnnl::normalization_flags::use_scale | dnnl::normalization_flags::use_shift;
    if (op.f[RELU_FLAG]) flags |= dnnl::normalization_flags::fuse_norm_relu;
    dnnl::batch_normalization_forward::desc d(dnnl::prop_kind::forward_inference, md_[in], op.eps, flags);
    dnnl::batch_normalization_forward::primitive_desc pd(d, attr(), cpuEngine());
    makeValue(out, pd.dst_desc());
    const memory::desc c({op.f[P0]}, dt::f32, tag::x);
    auto param = [&](int k) { return memory(c, cpuEngine(), const_cast<float *>(op.params[k].data())); };
    add(pd, {{DNNL_ARG_SRC, mem_[in]}, {DNNL_ARG_DST, mem_[out]}, {DNNL_ARG_SCALE, param(0)}, {DNNL_ARG_SHIFT, param(1)}, {DNNL_ARG_MEAN, param(2)},
             {DNNL_ARG_VARIANCE, param(3)}},
        "batch norm" + std::string(op.f[RELU_FLAG] ? " +relu" : ""));
  }

  // oneDNN 2.6 has no GroupNorm: our sweep (group_norm.cc) runs on the producer's channel-blocked
  // layout when each group fits its blocks, else on an NHWC copy.
  void groupNorm(const OpSpec &op) {
    const int in = op.f[IN], out = op.f[OUT];
    const int64_t c = op.f[P0];
    std::optional<tag> t = knownTag(md_[in]);
    GroupNormLayout layout{mb_, g_.extents[in].h * g_.extents[in].w, c, op.f[P1], t ? blockOf(*t, c) : 0};
    memory src = mem_[in];
    if (!groupNormLayoutFits(layout)) {
      src = as(in, memory::desc(dims(in), dt::f32, tag::nhwc));
      layout.block = c;
    }
    makeValue(out, src.get_desc());
    memory dst = mem_[out];
    const float *gamma = op.params[0].data(), *beta = op.params[1].data();
    const double eps = op.eps;
    const bool relu = op.f[RELU_FLAG] != 0;
    info_ += "group norm (own loop, block " + std::to_string(layout.block) + ")" + (relu ? " +relu" : "") + "\n";
    steps_.push_back({dnnl::primitive(), {}, [src, dst, gamma, beta, eps, layout, relu] {
                        groupNormForwardSweep(static_cast<const float *>(src.get_data_handle()), static_cast<float *>(dst.get_data_handle()), gamma, beta, eps,
                                              layout, relu, nullptr, nullptr);
                      }});
  }

  void addValues(const OpSpec &op) {
    const int a = op.f[IN], b = op.f[AUX], out = op.f[OUT];
    memory srcB = as(b, md_[a]);
    dnnl::binary::desc d(dnnl::algorithm::binary_add, md_[a], md_[a], md_[a]);
    dnnl::binary::primitive_desc pd(d, attr(op.f[RELU_FLAG] != 0), cpuEngine());
    makeValue(out, pd.dst_desc());
    add(pd, {{DNNL_ARG_SRC_0, mem_[a]}, {DNNL_ARG_SRC_1, srcB}, {DNNL_ARG_DST, mem_[out]}}, std::string("add") + (op.f[RELU_FLAG] ? " +relu" : ""));
  }

  void relu(const OpSpec &op) {
    const int in = op.f[IN], out = op.f[OUT];
    dnnl::eltwise_forward::desc d(dnnl::prop_kind::forward_inference, dnnl::algorithm::eltwise_relu, md_[in], 0.f, 0.f);
    dnnl::eltwise_forward::primitive_desc pd(d, attr(), cpuEngine());
    makeValue(out, pd.dst_desc());
    add(pd, {{DNNL_ARG_SRC, mem_[in]}, {DNNL_ARG_DST, mem_[out]}}, "relu");
  }

  // oneDNN's max-pool never lets padding win (PyTorch's -inf padding). Zero padding (BiT's root) is
  // an unpadded pool over a copy of the input inside a zero border, written once with the buffer.
  void maxPool(const OpSpec &op) {
    const int in = op.f[IN], out = op.f[OUT];
    const int64_t kernel = op.f[P0], stride = op.f[P1], p = op.f[P2];
    memory src = mem_[in];
    int64_t poolPad = p;
    if (op.f[P3]) {
      const Extent &e = g_.extents[in];
      const tag t = knownTag(md_[in]).value_or(tag::nhwc);
      const memory::desc padded({mb_, e.c, e.h + 2 * p, e.w + 2 * p}, dt::f32, t);
      const int b = pool_.takeZeroed(padded.get_size());
      memory interior = bound(padded.submemory_desc(dims(in), {0, 0, p, p}), b);
      add(dnnl::reorder::primitive_desc(cpuEngine(), md_[in], cpuEngine(), interior.get_desc()), {{DNNL_ARG_FROM, mem_[in]}, {DNNL_ARG_TO, interior}},
          "copy into zero border");
      src = bound(padded, b);
      poolPad = 0;
    }
    dnnl::pooling_forward::desc d(dnnl::prop_kind::forward_inference, dnnl::algorithm::pooling_max, src.get_desc(), anyDesc(dims(out)), {stride, stride},
                                  {kernel, kernel}, {poolPad, poolPad}, {poolPad, poolPad});
    dnnl::pooling_forward::primitive_desc pd(d, attr(), cpuEngine());
    makeValue(out, pd.dst_desc());
    add(pd, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, mem_[out]}}, "max-pool");
  }

  // Average over H x W, then the only reorder at the output: into the caller's [n, C] rows.
  void globalAvgPool(const OpSpec &op) {
    const int in = op.f[IN], out = op.f[OUT];
    const Extent &e = g_.extents[in];
    dnnl::pooling_forward::desc d(dnnl::prop_kind::forward_inference, dnnl::algorithm::pooling_avg_exclude_padding, md_[in], anyDesc(dims(out)), {1, 1},
                                  {e.h, e.w}, {0, 0}, {0, 0});
    dnnl::pooling_forward::primitive_desc pd(d, attr(), cpuEngine());
    makeValue(out, pd.dst_desc());
    add(pd, {{DNNL_ARG_SRC, mem_[in]}, {DNNL_ARG_DST, mem_[out]}}, "global average pool");
    output_ = memory(memory::desc(dims(out), dt::f32, tag::nchw), cpuEngine(), DNNL_MEMORY_NONE);
    add(dnnl::reorder::primitive_desc(cpuEngine(), md_[out], cpuEngine(), output_.get_desc()), {{DNNL_ARG_FROM, mem_[out]}, {DNNL_ARG_TO, output_}}, "to [n, C]");
  }

  void bindBuffers() {
    pool_.allocate();
    for (auto &[m, b] : bindings_) m.set_data_handle(pool_.data(b));
    if (scratchBytes_ == 0) return;
    scratch_ = memory(memory::desc({static_cast<int64_t>(scratchBytes_)}, dt::u8, tag::x), cpuEngine());
    for (size_t s : needsScratch_) steps_[s].args[DNNL_ARG_SCRATCHPAD] = scratch_;
  }

  const Graph &g_;
  WeightCache &weights_;
  dnnl::stream &stream_;
  const int64_t mb_;
  std::vector<memory::desc> md_;
  std::vector<memory> mem_;
  std::vector<int> buffer_, temps_;
  BufferPool pool_;
  std::vector<std::pair<memory, int>> bindings_;
  std::vector<Step> steps_;
  std::vector<size_t> needsScratch_;
  size_t scratchBytes_ = 0;
  memory scratch_, input_, output_;
  std::string info_;
};

class Plan {
 public:
  Plan(Graph g, int64_t microBatch) : g_(std::move(g)), microBatch_(microBatch), stream_(cpuEngine()) {
    g_.deriveExtents();
    if (microBatch_ <= 0) throw ArgError("inference plan: the micro-batch must be positive");
  }

  void run(const float *images, int64_t n, float *out) {
    for (int64_t start = 0; start < n; start += microBatch_) {
      const int64_t size = std::min(microBatch_, n - start);
      instance(size).run(images + start * g_.imageFloats(), out + start * g_.featureDim());
    }
  }

  Instance &instance(int64_t size) {
    auto it = instances_.find(size);
    if (it != instances_.end()) return *it->second;
    // Remainder sizes come and go with the callers' batch sizes; keep a few, and always the full one.
    if (instances_.size() >= 4) {
      for (auto j = instances_.begin(); j != instances_.end();) j = j->first == microBatch_ ? std::next(j) : instances_.erase(j);
    }
    return *instances_.emplace(size, std::make_unique<Instance>(g_, weights_, stream_, size)).first->second;
  }

  const Graph &graph() const { return g_; }
  int64_t microBatch() const { return microBatch_; }

 private:
  Graph g_;
  int64_t microBatch_;
  dnnl::stream stream_;
  WeightCache weights_;
  std::map<int64_t, std::unique_ptr<Instance>> instances_;
};

// The JS handle: an External holding this; dispose empties it before the garbage collector would.
struct PlanHandle {
  std::unique_ptr<Plan> plan;
};

Plan &planArg(napi_env env, napi_value v) {
  void *data = nullptr;
  if (napi_get_value_external(env, v, &data) != napi_ok || !data) throw ArgError("plan: expected a plan handle");
  auto *h = static_cast<PlanHandle *>(data);
  if (!h->plan) throw ArgError("plan: this plan was disposed");
  return *h->plan;
}

Graph graphArgs(napi_env env, napi_value *args) {
  I32View ops = anyI32Arg(env, args[0], "ops");
  if (ops.length % OP_INTS != 0) throw ArgError("planCreate: ops length is not a multiple of " + std::to_string(OP_INTS));
  const size_t count = ops.length / OP_INTS;
  F32View eps = f32Arg(env, args[1], "eps", count);
  uint32_t paramsLength = 0;
  if (napi_get_array_length(env, args[2], &paramsLength) != napi_ok || paramsLength != count) throw ArgError("planCreate: params must be an array with one entry per op");
  Graph g;
  g.imageSize = intArg(env, args[3], "imageSize");
  if (g.imageSize <= 0) throw ArgError("planCreate: imageSize must be positive");
  g.ops.resize(count);
  for (size_t i = 0; i < count; i++) {
    std::copy(ops.data + i * OP_INTS, ops.data + (i + 1) * OP_INTS, g.ops[i].f);
    g.ops[i].eps = eps.data[i];
    napi_value list;
    uint32_t n = 0;
    napi_get_element(env, args[2], static_cast<uint32_t>(i), &list);
    if (napi_get_array_length(env, list, &n) != napi_ok) throw ArgError("planCreate: params[" + std::to_string(i) + "] must be an array");
    for (uint32_t k = 0; k < n; k++) {
      napi_value a;
      napi_get_element(env, list, k, &a);
      F32View p = anyF32Arg(env, a, "param");
      g.ops[i].params.emplace_back(p.data, p.data + p.length);
    }
  }
  return g;
}

template <napi_value (*fn)(napi_env, napi_value *, size_t)>
napi_value guarded(napi_env env, napi_callback_info info) {
  size_t argc = 8;
  napi_value args[8];
  napi_get_cb_info(env, info, &argc, args, nullptr, nullptr);
  try {
    return fn(env, args, argc);
  } catch (const dnnl::error &e) {
    throwAsJs(env, e, "oneDNN: ");
  } catch (const std::exception &e) {
    throwAsJs(env, e);
  }
  return nullptr;
}

napi_value string(napi_env env, const std::string &s) {
  napi_value out;
  napi_create_string_utf8(env, s.c_str(), s.size(), &out);
  return out;
}

// (ops Int32Array, eps Float32Array, params Float32Array[][], imageSize, microBatch) -> handle
napi_value create(napi_env env, napi_value *args, size_t argc) {
  if (argc < 5) throw ArgError("planCreate: expected 5 arguments");
  auto handle = std::make_unique<PlanHandle>();
  handle->plan = std::make_unique<Plan>(graphArgs(env, args), intArg(env, args[4], "microBatch"));
  napi_value out;
  napi_create_external(env, handle.get(), [](napi_env, void *data, void *) { delete static_cast<PlanHandle *>(data); }, nullptr, &out);
  handle.release();
  return out;
}

// A run's arguments: (plan, images Float32Array [n*S*S*3], n, out Float32Array [n*C]).
struct RunArgs {
  Plan *plan;
  const float *images;
  float *out;
  int64_t n;
};

RunArgs runArgs(napi_env env, napi_value *args, size_t argc, const std::string &fn) {
  if (argc < 4) throw ArgError(fn + ": expected 4 arguments");
  Plan &plan = planArg(env, args[0]);
  const int64_t n = intArg(env, args[2], "n");
  if (n <= 0) throw ArgError(fn + ": n must be positive");
  F32View images = f32Arg(env, args[1], "images", n * plan.graph().imageFloats());
  F32View out = f32Arg(env, args[3], "out", n * plan.graph().featureDim());
  return {&plan, images.data, out.data, n};
}

napi_value run(napi_env env, napi_value *args, size_t argc) {
  const RunArgs a = runArgs(env, args, argc, "planRun");
  a.plan->run(a.images, a.n, a.out);
  return nullptr;
}

// The same run as N-API async work on libuv's pool, so the main thread goes on (decoding the next
// images, drawing progress) while oneDNN's threads compute. The caller runs one call per plan at a time
// and keeps the plan until it settles (src/engine/onednn/inference_plan.ts); the references below keep
// the arrays and the plan's handle alive against the garbage collector meanwhile.
struct RunRequest {
  RunArgs args{};
  napi_ref refs[3] = {nullptr, nullptr, nullptr};
  napi_deferred deferred = nullptr;
  napi_async_work work = nullptr;
  std::string error;
};

void runExecute(napi_env, void *data) {
  auto *r = static_cast<RunRequest *>(data);
  try {
    r->args.plan->run(r->args.images, r->args.n, r->args.out);
  } catch (const dnnl::error &e) {
    r->error = std::string("oneDNN: ") + e.what();
  } catch (const std::exception &e) {
    r->error = e.what();
  }
}

void runComplete(napi_env env, napi_status status, void *data) {
  std::unique_ptr<RunRequest> r(static_cast<RunRequest *>(data));
  for (napi_ref ref : r->refs) napi_delete_reference(env, ref);
  napi_delete_async_work(env, r->work);
  if (status != napi_ok && r->error.empty()) r->error = "planRunAsync: the run was cancelled";
  if (r->error.empty()) {
    napi_value undefined;
    napi_get_undefined(env, &undefined);
    napi_resolve_deferred(env, r->deferred, undefined);
    return;
  }
  rejectWithMessage(env, r->deferred, r->error);
}

// planRun's arguments -> Promise<void>
napi_value runAsync(napi_env env, napi_value *args, size_t argc) {
  auto r = std::make_unique<RunRequest>();
  r->args = runArgs(env, args, argc, "planRunAsync");
  const size_t kept[3] = {0, 1, 3};
  for (size_t k = 0; k < 3; k++) napi_create_reference(env, args[kept[k]], 1, &r->refs[k]);
  napi_value promise = queuePromiseWork(env, "simtrip.planRun", runExecute, runComplete, r.get(), &r->deferred, &r->work);
  r.release();
  return promise;
}

// (plan) -> the primitives of the full micro-batch and their implementations
napi_value describe(napi_env env, napi_value *args, size_t argc) {
  if (argc < 1) throw ArgError("planInfo: expected the plan");
  Plan &plan = planArg(env, args[0]);
  Instance &inst = plan.instance(plan.microBatch());
  return string(env, "micro-batch " + std::to_string(plan.microBatch()) + ", " + std::to_string(inst.bytes() >> 20) + " MiB of buffers\n" + inst.info());
}

napi_value dispose(napi_env env, napi_value *args, size_t argc) {
  if (argc < 1) throw ArgError("planDispose: expected the plan");
  void *data = nullptr;
  if (napi_get_value_external(env, args[0], &data) != napi_ok || !data) throw ArgError("planDispose: expected a plan handle");
  static_cast<PlanHandle *>(data)->plan.reset();
  return nullptr;
}

}  // namespace

void registerPlan(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      {"planCreate", nullptr, guarded<create>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"planRun", nullptr, guarded<run>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"planRunAsync", nullptr, guarded<runAsync>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"planInfo", nullptr, guarded<describe>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"planDispose", nullptr, guarded<dispose>, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
}

}  // namespace simtrip
