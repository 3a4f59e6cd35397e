// Normalisation over channel groups of channels-last tensors, shared by batch norm and group norm
// (implemented in group_norm.cu). A tensor is viewed as [segments][rows][channels] and normalised per
// (segment, group of groupSize adjacent channels) over the group's rows x groupSize values:
//  - group norm of NHWC: segments N, rows H*W, groupSize C/G;
//  - batch norm: one segment of every row, groups of one channel.
// Statistics are [segments][groups] (sample-major), variances biased. All pointers are device memory.
//
// The tensors x and dy may be float32 or half-stored (X, Dy = float or Half, half_storage.cuh): the
// kernels read halves as the floats they stand for, so the results are those of the float32 path bit
// for bit. Everything else (parameters, statistics, outputs) is float32. group_norm.cu instantiates
// every combination.
#pragma once

#include <cstddef>

#include "../compat.h"
#include "half_storage.cuh"

namespace simtrip::cuda {

struct NormShape {
  int segments;
  size_t rows;
  int channels;
  int groupSize;

  __host__ __device__ int groups() const { return channels / groupSize; }
  __host__ __device__ size_t size() const { return size_t(segments) * rows * size_t(channels); }
  __host__ __device__ size_t stats() const { return size_t(segments) * size_t(groups()); }
};

// Throws ArgError unless every size is positive and groupSize divides channels.
void checkNormShape(const NormShape &shape, const char *who);

// y = (x - mean) * gamma / sqrt(variance + eps) + beta, with the statistics of x, also written out.
template <class X>
void normForward(const X *x, const float *gamma, const float *beta, float *y, float *mean, float *variance, const NormShape &shape,
                 double eps);

// The gradients of normForward's y for the upstream dy, given the statistics it returned.
template <class Dy, class X>
void normBackward(const Dy *dy, const X *x, const float *gamma, const float *mean, const float *variance, float *dx, float *dgamma,
                  float *dbeta, const NormShape &shape, double eps);

// y[s][r][c] = (x[s][r][c] - center[s][c]) * scale[s][c] + offset[c]: the element-wise pass of every
// normalisation, for per-channel constants computed beforehand.
template <class X>
void normalizeColumns(const X *x, const float *center, const float *scale, const float *offset, float *y, const NormShape &shape);

}  // namespace simtrip::cuda
