// The scheduler behind emu.h: blocks run one after the other; in a cooperative kernel each thread of a
// block is a fiber that runs until it finishes or reaches a barrier.
//
// A block of 256 threads switches fibers tens of thousands of times in a reduction, so the switch is
// a dozen instructions of assembly on x86-64 (callee-saved registers, the stack pointer, the FPU and
// SSE control words); glibc's swapcontext would make a system call for the signal mask every time and
// dominated the test suite. Elsewhere ucontext still does the job, slower.
#include "emu.h"

#if defined(__x86_64__) && defined(__linux__)
#define SIMTRIP_EMU_ASM_SWITCH 1
#else
#include <ucontext.h>
#endif

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

thread_local uint3 threadIdx;
thread_local uint3 blockIdx;
thread_local dim3 blockDim;
thread_local dim3 gridDim;

namespace simtrip::emu {

namespace {

// Kernels keep little on the stack; 64 KiB leaves room for an unoptimised debug build.
constexpr size_t kStackBytes = 64 * 1024;

#ifdef SIMTRIP_EMU_ASM_SWITCH

// Saves the callee-saved state of the running context on its stack and its stack pointer in *from,
// then continues the context whose stack pointer is `to` (System V x86-64 calling convention).
extern "C" void simtrip_emu_switch(void **from, void *to);
asm(R"(
  .text
  .globl simtrip_emu_switch
  .type simtrip_emu_switch,@function
simtrip_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size simtrip_emu_switch,.-simtrip_emu_switch
  .section .note.GNU-stack,"",@progbits
  .text
)");

struct Context {
  void *sp = nullptr;
};

// A context that starts `entry` on `stack`: the frame simtrip_emu_switch pops, returning into entry
// with the stack aligned as after a call. entry must never return.
void contextStart(Context &c, char *stack, size_t bytes, void (*entry)()) {
  auto top = reinterpret_cast<uintptr_t>(stack + bytes) & ~uintptr_t(15);
  auto *frame = reinterpret_cast<uint64_t *>(top);
  *--frame = 0;                                    // entry's own (never used) return address
  *--frame = reinterpret_cast<uint64_t>(entry);    // where `ret` goes
  for (int i = 0; i < 6; i++) *--frame = 0;        // rbp, rbx, r12-r15
  uint32_t control[2];
  asm volatile("stmxcsr %0\n\tfnstcw %1" : "=m"(control[0]), "=m"(control[1]));
  *--frame = uint64_t(control[0]) | (uint64_t(control[1] & 0xffffu) << 32);
  c.sp = frame;
}

void contextSwitch(Context &from, Context &to) { simtrip_emu_switch(&from.sp, to.sp); }

#else

struct Context {
  ucontext_t uc;
};

void contextStart(Context &c, char *stack, size_t bytes, void (*entry)()) {
  getcontext(&c.uc);
  c.uc.uc_stack.ss_sp = stack;
  c.uc.uc_stack.ss_size = bytes;
  c.uc.uc_link = nullptr;
  makecontext(&c.uc, entry, 0);
}

void contextSwitch(Context &from, Context &to) { swapcontext(&from.uc, &to.uc); }

#endif

enum class State { ready, atBlockBarrier, atWarpBarrier, done };

// Fiber stacks outlive launches: allocating 16 MiB of them per kernel launch cost more than running it.
thread_local std::vector<std::unique_ptr<char[]>> stackPool;

char *stackFor(size_t thread) {
  while (stackPool.size() <= thread) stackPool.emplace_back(new char[kStackBytes]);
  return stackPool[thread].get();
}

struct Fiber {
  Context context;
  State state = State::ready;
  uint3 tid{0, 0, 0};
  unsigned warpMask = 0;  // the mask of the warp barrier it waits at
};

struct Launch {
  const char *name = "";
  bool cooperative = false;
  const std::function<void()> *body = nullptr;
  std::vector<Fiber> fibers;
  Context scheduler;
  int current = -1;
  std::string error;
  std::vector<uint64_t> slots;  // one per thread: the value a lane publishes to a shuffle
};

thread_local Launch *active = nullptr;

int linearId(const uint3 &t) { return static_cast<int>(t.x + blockDim.x * (t.y + blockDim.y * t.z)); }

std::string where(const Launch &l) {
  return std::string("kernel ") + l.name + ", block (" + std::to_string(blockIdx.x) + "," + std::to_string(blockIdx.y) +
         "," + std::to_string(blockIdx.z) + ")";
}

Launch &cooperativeLaunch(const char *what) {
  if (!active) throw std::logic_error(std::string(what) + " called outside a kernel");
  if (!active->cooperative) {
    // A plain launch runs threads one after the other: a barrier could never be met. Thrown on the
    // caller's own stack, so it unwinds out of the kernel to run().
    throw std::logic_error(where(*active) + " calls " + what + " but was launched with launch() instead of launch_cooperative()");
  }
  return *active;
}

// Fails the running thread: records the first error and never resumes it.
[[noreturn]] void fail(Launch &l, const std::string &message) {
  if (l.error.empty()) l.error = where(l) + ": " + message;
  Fiber &f = l.fibers[l.current];
  f.state = State::done;
  contextSwitch(f.context, l.scheduler);
  __builtin_unreachable();
}

void yieldAs(State state, unsigned warpMask = 0) {
  Launch &l = *active;
  Fiber &f = l.fibers[l.current];
  f.state = state;
  f.warpMask = warpMask;
  contextSwitch(f.context, l.scheduler);
  threadIdx = f.tid;
}

void fiberEntry() {
  Launch &l = *active;
  (*l.body)();
  Fiber &f = l.fibers[l.current];
  f.state = State::done;
  // A fiber has nowhere to return to: hand control back for good instead.
  contextSwitch(f.context, l.scheduler);
  __builtin_unreachable();
}

// Releases the barriers that can be released; false when threads wait at a barrier that can never be met.
bool releaseBarriers(Launch &l) {
  int waitingBlock = 0, done = 0;
  const int n = static_cast<int>(l.fibers.size());
  for (const Fiber &f : l.fibers) {
    if (f.state == State::atBlockBarrier) waitingBlock++;
    if (f.state == State::done) done++;
  }
  bool released = false;
  // A warp barrier is met when every live lane of its mask waits at one.
  for (int w = 0; w * warpSize < n; w++) {
    unsigned waiting = 0, live = 0, mask = 0;
    for (int lane = 0; lane < warpSize && w * warpSize + lane < n; lane++) {
      const Fiber &f = l.fibers[w * warpSize + lane];
      if (f.state != State::done) live |= 1u << lane;
      if (f.state == State::atWarpBarrier) {
        waiting |= 1u << lane;
        mask = f.warpMask;
      }
    }
    if (waiting && (mask & live) == waiting) {
      for (int lane = 0; lane < warpSize && w * warpSize + lane < n; lane++) {
        Fiber &f = l.fibers[w * warpSize + lane];
        if (f.state == State::atWarpBarrier) f.state = State::ready;
      }
      released = true;
    }
  }
  if (released) return true;
  if (waitingBlock > 0 && waitingBlock + done == n) {
    if (done > 0) {
      l.error = where(l) + ": " + std::to_string(waitingBlock) + " threads wait at __syncthreads while " + std::to_string(done) +
                " have exited (every thread of a block must reach each barrier)";
      return false;
    }
    for (Fiber &f : l.fibers) f.state = State::ready;
    return true;
  }
  return false;
}

void runBlockAsFibers(Launch &l) {
  const int n = static_cast<int>(l.fibers.size());
  for (int i = 0; i < n; i++) {
    Fiber &f = l.fibers[i];
    f.state = State::ready;
    f.tid = uint3{static_cast<unsigned>(i % blockDim.x), static_cast<unsigned>((i / blockDim.x) % blockDim.y),
                  static_cast<unsigned>(i / (blockDim.x * blockDim.y))};
    contextStart(f.context, stackFor(static_cast<size_t>(i)), kStackBytes, fiberEntry);
  }
  for (;;) {
    bool ran = false;
    for (int i = 0; i < n; i++) {
      Fiber &f = l.fibers[i];
      if (f.state != State::ready) continue;
      l.current = i;
      threadIdx = f.tid;
      contextSwitch(l.scheduler, f.context);
      ran = true;
      if (!l.error.empty()) return;
    }
    if (ran) continue;
    bool allDone = true;
    for (const Fiber &f : l.fibers) allDone = allDone && f.state == State::done;
    if (allDone) return;
    if (!releaseBarriers(l)) {
      if (l.error.empty()) l.error = where(l) + ": threads wait at a barrier that the rest of the block never reaches";
      return;
    }
  }
}

}  // namespace

void run(const char *name, dim3 grid, dim3 block, bool cooperative, const std::function<void()> &body) {
  if (active) throw std::logic_error(std::string("kernel ") + name + " launched from inside kernel " + active->name);
  const size_t threads = size_t(block.x) * block.y * block.z;
  if (threads == 0 || threads > 1024) throw std::invalid_argument(std::string("kernel ") + name + ": block of " + std::to_string(threads) + " threads");
  if (grid.y > 65535 || grid.z > 65535) throw std::invalid_argument(std::string("kernel ") + name + ": grid y/z above 65535");
  Launch l;
  l.name = name;
  l.cooperative = cooperative;
  l.body = &body;
  blockDim = block;
  gridDim = grid;
  if (cooperative) {
    l.fibers.resize(threads);
    l.slots.resize(threads);
  }
  active = &l;
  try {
    for (unsigned bz = 0; bz < grid.z; bz++) {
      for (unsigned by = 0; by < grid.y; by++) {
        for (unsigned bx = 0; bx < grid.x; bx++) {
          blockIdx = uint3{bx, by, bz};
          if (cooperative) {
            runBlockAsFibers(l);
            if (!l.error.empty()) throw std::runtime_error(l.error);
            continue;
          }
          for (unsigned tz = 0; tz < block.z; tz++) {
            for (unsigned ty = 0; ty < block.y; ty++) {
              for (unsigned tx = 0; tx < block.x; tx++) {
                threadIdx = uint3{tx, ty, tz};
                body();
              }
            }
          }
        }
      }
    }
  } catch (...) {
    active = nullptr;
    throw;
  }
  active = nullptr;
}

void syncthreads() {
  cooperativeLaunch("__syncthreads");
  yieldAs(State::atBlockBarrier);
}

int lane() { return linearId(threadIdx) % warpSize; }

void syncwarp(unsigned mask) {
  Launch &l = cooperativeLaunch("__syncwarp");
  if (!(mask & (1u << lane()))) fail(l, "__syncwarp with a mask that leaves out the calling lane");
  yieldAs(State::atWarpBarrier, mask);
}

uint64_t exchange(unsigned mask, uint64_t bits, int src) {
  Launch &l = cooperativeLaunch("a warp shuffle");
  const int self = linearId(threadIdx);
  const int base = self - self % warpSize;
  if (!(mask & (1u << (self - base)))) fail(l, "a shuffle with a mask that leaves out the calling lane");
  if (src < 0 || src >= warpSize || !(mask & (1u << src))) fail(l, "a shuffle reads lane " + std::to_string(src) + ", which is not in its mask");
  if (base + src >= static_cast<int>(l.fibers.size())) fail(l, "a shuffle reads lane " + std::to_string(src) + ", past the end of the block");
  l.slots[self] = bits;
  yieldAs(State::atWarpBarrier, mask);
  if (l.fibers[base + src].state == State::done) fail(l, "a shuffle reads lane " + std::to_string(src) + ", which has exited");
  const uint64_t out = l.slots[base + src];
  // A second barrier: no lane may publish its next value before every lane has read this one.
  yieldAs(State::atWarpBarrier, mask);
  return out;
}

}  // namespace simtrip::emu
