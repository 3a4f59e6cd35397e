// conv_algos.h's book of searches, its exports (convPlans for check:cuda's report, saveConvPlans and
// loadConvPlans so a device run's separate processes search each shape once) and the search workspace.
#include "conv_algos.h"

#include <algorithm>
#include <map>
#include <sstream>

#include "napi.h"

namespace simtrip::cuda {

namespace {

std::map<std::string, std::unique_ptr<ConvChoices>> &book() {
  static std::map<std::string, std::unique_ptr<ConvChoices>> b;
  return b;
}

const char *storageName(Storage s) { return s == Storage::Half ? "half" : "float"; }
const char *mathName(MathMode m) { return m == MathMode::Tf32 ? "tf32" : "exact"; }

}  // namespace

const char *nameOf(ConvDirection d) {
  switch (d) {
    case ConvDirection::Forward:
      return "forward";
    case ConvDirection::BackwardData:
      return "backward data";
    default:
      return "backward filter";
  }
}

std::string convKey(ConvDirection d, const ConvShape &s, Storage storage, MathMode math) {
  std::ostringstream k;
  k << static_cast<int>(d) << ' ' << storageName(storage) << ' ' << mathName(math);
  for (int v : {s.n, s.h, s.w, s.c, s.k, s.r, s.s, s.padH, s.padW, s.strideH, s.strideW, s.dilationH, s.dilationW, s.outH, s.outW}) k << ' ' << v;
  return k.str();
}

ConvChoices *findChoices(const std::string &key) {
  const auto it = book().find(key);
  return it == book().end() ? nullptr : it->second.get();
}

ConvChoices &recordChoices(const std::string &key, ConvChoices choices) {
  // Never cleared: plans point into the book, and a run has a few dozen shapes.
  auto &slot = book()[key];
  slot = std::make_unique<ConvChoices>(std::move(choices));
  return *slot;
}

size_t searchWorkspaceLimit() {
  const MemoryStats m = memory();
  if (m.totalBytes == 0) return kSearchWorkspace;  // the host build without a capacity
  // The pool's cached blocks are free for our allocations too.
  const size_t cached = m.reserved > m.inUse ? m.reserved - m.inUse : 0;
  return std::min(kSearchWorkspace, (m.freeBytes + cached) / 2);
}

std::unique_ptr<Scratch> searchWorkspace() {
  for (size_t bytes = searchWorkspaceLimit(); bytes >= kLeastSearchWorkspace; bytes /= 4) {
    try {
      return std::make_unique<Scratch>(bytes);
    } catch (const OutOfMemory &) {
      // try a quarter of it
    }
  }
  return std::make_unique<Scratch>(0);
}

// () -> [{ key, algorithms: [{ algo, mathType, workspace, ms }], used, calls, searchWorkspace, loaded }]
SIMTRIP_EXPORT(convPlans) {
  napi_value out;
  napi_create_array(args.env, &out);
  uint32_t i = 0;
  for (const auto &[key, c] : book()) {
    napi_value plan, algos;
    napi_create_object(args.env, &plan);
    napi_create_array(args.env, &algos);
    for (uint32_t j = 0; j < c->ranked.size(); j++) {
      const ConvAlgo &a = c->ranked[j];
      napi_value algo;
      napi_create_object(args.env, &algo);
      setProperty(args.env, algo, "algo", number(args.env, a.algo));
      setProperty(args.env, algo, "mathType", number(args.env, a.mathType));
      setProperty(args.env, algo, "workspace", number(args.env, static_cast<double>(a.workspace)));
      setProperty(args.env, algo, "ms", number(args.env, a.ms));
      napi_set_element(args.env, algos, j, algo);
    }
    setProperty(args.env, plan, "key", string(args.env, key.c_str()));
    setProperty(args.env, plan, "algorithms", algos);
    setProperty(args.env, plan, "used", number(args.env, c->used));
    setProperty(args.env, plan, "calls", number(args.env, static_cast<double>(c->calls)));
    setProperty(args.env, plan, "searchWorkspace", number(args.env, static_cast<double>(c->searchWorkspace)));
    setProperty(args.env, plan, "loaded", boolean(args.env, c->loaded));
    napi_set_element(args.env, out, i++, plan);
  }
  return out;
}

// () -> text: one line per search, "key|searchWorkspace|algo mathType workspace ms;...".
SIMTRIP_EXPORT(saveConvPlans) {
  std::ostringstream text;
  for (const auto &[key, c] : book()) {
    text << key << '|' << c->searchWorkspace << '|';
    for (const ConvAlgo &a : c->ranked) text << a.algo << ' ' << a.mathType << ' ' << a.workspace << ' ' << a.ms << ';';
    text << '\n';
  }
  return string(args.env, text.str().c_str());
}

// (text): searches saved by saveConvPlans (by the same device and libraries: the caller checks).
// Returns how many were loaded; malformed lines are skipped.
SIMTRIP_EXPORT(loadConvPlans) {
  args.need(1, "loadConvPlans");
  std::istringstream in(args.text(0, "text"));
  int loaded = 0;
  for (std::string line; std::getline(in, line);) {
    const size_t a = line.find('|'), b = a == std::string::npos ? a : line.find('|', a + 1);
    if (b == std::string::npos) continue;
    ConvChoices c;
    c.loaded = true;
    std::istringstream ws(line.substr(a + 1, b - a - 1));
    ws >> c.searchWorkspace;
    std::istringstream algos(line.substr(b + 1));
    for (std::string item; std::getline(algos, item, ';');) {
      std::istringstream fields(item);
      ConvAlgo algo;
      if (fields >> algo.algo >> algo.mathType >> algo.workspace >> algo.ms) c.ranked.push_back(algo);
    }
    if (c.ranked.empty() || findChoices(line.substr(0, a))) continue;
    recordChoices(line.substr(0, a), std::move(c));
    loaded++;
  }
  return number(args.env, loaded);
}

}  // namespace simtrip::cuda
