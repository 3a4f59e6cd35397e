// What a convolution's algorithm search found, shared by both builds: gpu/cudnn.cu fills it from
// cuDNN's Find, host/dnn.cc from an emulated search over its reference loops, so the choice below runs
// in the tests too.
//
// The search keeps every usable algorithm, fastest first, with the workspace each needs. A call runs
// the first whose workspace can be allocated now: the search ran while memory was free, and a step
// later in training may not have the fastest algorithm's workspace (up to a gigabyte) where a slower
// one needs none. PyTorch falls back the same way instead of failing with out-of-memory.
//
// The search itself is offered at most kSearchWorkspace, and no more than half the memory free on the
// device when it runs, so the search cannot take what the tensors of the step need next.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dnn.h"
#include "runtime.h"

namespace simtrip::cuda {

enum class ConvDirection { Forward = 0, BackwardData = 1, BackwardFilter = 2 };
const char *nameOf(ConvDirection d);

// One algorithm: a cudnnConvolution{Fwd,BwdData,BwdFilter}Algo_t by direction (the host build's
// emulated search has 0 "direct, no workspace" and 1 "transform, workspace"), its cudnnMathType_t, the
// workspace it needs and the time the search measured.
struct ConvAlgo {
  int algo = 0;
  int mathType = 0;
  size_t workspace = 0;
  float ms = 0.f;
};

struct ConvChoices {
  std::vector<ConvAlgo> ranked;  // usable algorithms, fastest first
  size_t searchWorkspace = 0;    // what the search was offered
  int used = -1;                 // the algorithm the last call ran (an index into ranked)
  uint64_t calls = 0;            // calls run with these choices (reports match failures to plans by it)
  bool loaded = false;           // from a saved search (loadConvPlans), not searched in this process
};

// The book's key of a convolution: direction, storage, math mode and every number of the shape.
std::string convKey(ConvDirection d, const ConvShape &shape, Storage storage, MathMode math);
// The choices recorded for key, or null.
ConvChoices *findChoices(const std::string &key);
ConvChoices &recordChoices(const std::string &key, ConvChoices choices);

constexpr size_t kSearchWorkspace = size_t(1) << 30;
constexpr size_t kLeastSearchWorkspace = size_t(1) << 20;
// The most a search may be offered now: kSearchWorkspace, at most half of what is free.
size_t searchWorkspaceLimit();
// Scratch for a search: searchWorkspaceLimit(), or a quarter of it and so on while allocation fails,
// down to kLeastSearchWorkspace; below that none (the algorithms without workspace remain).
std::unique_ptr<Scratch> searchWorkspace();

// Runs run(algo, workspace, workspaceBytes) with the first algorithm of c.ranked whose workspace can
// be allocated; out of memory only when not even the last fits. `what` names the call for errors.
template <class Run>
void runRanked(ConvChoices &c, const std::string &what, Run run) {
  if (c.ranked.empty()) throw DeviceError(what + ": the search found no usable algorithm");
  for (size_t i = 0; i < c.ranked.size(); i++) {
    std::unique_ptr<Scratch> workspace;
    try {
      workspace = std::make_unique<Scratch>(c.ranked[i].workspace);
    } catch (const OutOfMemory &) {
      if (i + 1 == c.ranked.size()) throw;
      continue;
    }
    c.used = static_cast<int>(i);
    c.calls++;
    run(c.ranked[i], workspace->as<void>(), workspace->bytes());
    return;
  }
}

}  // namespace simtrip::cuda
