// What every CUDA source of simtrip includes first. Two builds compile the same kernels:
//  - the GPU build (nvcc): the real CUDA runtime;
//  - the host build (g++, SIMTRIP_HOST_EMU): host/emu.h runs the kernels on the CPU with CUDA's
//    block/thread/barrier semantics, so CI tests every kernel without a GPU.
#pragma once

#ifdef SIMTRIP_HOST_EMU
#include "host/emu.h"
#else
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#endif

#include <cstddef>
#include <cstdint>
