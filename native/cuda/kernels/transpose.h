// Copies between layouts, callable from any native source (the convolutions reorder filters with them).
#pragma once

#include "grid.cuh"

namespace simtrip::cuda {

// dst (row-major over src.shape) = src read through src.strides: any permutation, slice or broadcast
// of elements of elementBytes (4, or 2 for halves; strides count elements). Ranks up to kMaxRank.
void stridedCopy(const void *src, void *dst, const Strided &src_view, size_t elementBytes = 4);

// dst[c][r] = src[r][c] for a rows x cols matrix of elements of elementBytes (4, or 2 for halves),
// batched: batch matrices back to back.
void transpose2d(const void *src, void *dst, int batch, int rows, int cols, size_t elementBytes = 4);

}  // namespace simtrip::cuda
