// Copies between layouts, callable from any native source (the convolutions reorder filters with them).
#pragma once

#include "grid.cuh"

namespace simtrip::cuda {

// dst (row-major over src.shape) = src read through src.strides: any permutation, slice or broadcast
// of 4-byte elements. Ranks up to kMaxRank.
void stridedCopy(const void *src, void *dst, const Strided &src_view);

// dst[c][r] = src[r][c] for a rows x cols matrix of 4-byte elements, batched: batch matrices back to back.
void transpose2d(const void *src, void *dst, int batch, int rows, int cols);

}  // namespace simtrip::cuda
