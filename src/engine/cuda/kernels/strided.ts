/**
 * Strided views for the layout kernels: row-major strides, merging of dimensions that stay adjacent,
 * and the two native copies (native/cuda/kernels/transpose.cu) every layout kernel ends in.
 */
import { tf } from '../../tf.js';
import type { CudaBackend } from '../backend.js';
import { addonOf } from './common.js';

interface StridedAddon {
  stridedCopy(src: number, dst: number, shape: Int32Array, strides: Int32Array): void;
  transpose2d(src: number, dst: number, batch: number, rows: number, cols: number): void;
}

export const MAX_RANK = 6;

export function rowMajorStrides(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length).fill(1);
  for (let d = shape.length - 2; d >= 0; d--) strides[d] = strides[d + 1]! * shape[d + 1]!;
  return strides;
}

/**
 * The same view with fewer dimensions: size-1 dimensions dropped, and neighbours merged where the
 * outer one steps exactly over the inner one (so one index walks both).
 */
export function mergeDims(shape: readonly number[], strides: readonly number[]): { shape: number[]; strides: number[] } {
  const s: number[] = [];
  const t: number[] = [];
  for (let d = 0; d < shape.length; d++) {
    if (shape[d] === 1) continue;
    const last = s.length - 1;
    if (last >= 0 && t[last] === strides[d]! * shape[d]!) {
      s[last] = s[last]! * shape[d]!;
      t[last] = strides[d]!;
    } else {
      s.push(shape[d]!);
      t.push(strides[d]!);
    }
  }
  return s.length ? { shape: s, strides: t } : { shape: [1], strides: [1] };
}

/** Element size in 4-byte words on the device. */
function words(dtype: tf.DataType): number {
  return dtype === 'complex64' ? 2 : 1;
}

/**
 * dst (contiguous, row-major over `shape`) = src read through `strides` (in elements, 0 to broadcast,
 * from element `offset`). Returns false when the merged view has more dimensions than the kernel takes.
 */
export function copyStrided(
  backend: CudaBackend,
  dtype: tf.DataType,
  src: number,
  dst: number,
  shape: readonly number[],
  strides: readonly number[],
  offset = 0,
): boolean {
  if (shape.some((d) => d === 0)) return true;
  const w = words(dtype);
  const fullShape = w === 1 ? [...shape] : [...shape, w];
  const fullStrides = w === 1 ? [...strides] : [...strides.map((s) => s * w), 1];
  const view = mergeDims(fullShape, fullStrides);
  // The kernel takes int32 sizes and strides: a view of a tensor of 2^31 elements or more runs on the host.
  if (view.shape.length > MAX_RANK || [...view.shape, ...view.strides].some((v) => Math.abs(v) > 0x7fffffff)) return false;
  addonOf<StridedAddon>(backend).stridedCopy(src + offset * w * 4, dst, Int32Array.from(view.shape), Int32Array.from(view.strides));
  return true;
}

/** dst = the batch of rows x cols matrices at src, each transposed (4-byte elements). */
export function transposeMatrices(backend: CudaBackend, src: number, dst: number, batch: number, rows: number, cols: number): void {
  addonOf<StridedAddon>(backend).transpose2d(src, dst, batch, rows, cols);
}

/**
 * A permutation of `shape` as [batch, rows, cols] -> [batch, cols, rows] when it is one (merging the
 * dimensions that move together), else null.
 */
export function asMatrixTranspose(shape: readonly number[], perm: readonly number[]): [number, number, number] | null {
  const kept = perm.filter((p) => shape[p] !== 1);
  const groups: number[][] = [];
  for (const p of kept) {
    const g = groups[groups.length - 1];
    if (g && g[g.length - 1]! + 1 === p) g.push(p);
    else groups.push([p]);
  }
  const sizes = groups.map((g) => g.reduce((a, p) => a * shape[p]!, 1));
  const order = groups.map((g) => g[0]!);
  const sorted = [...order].sort((a, b) => a - b);
  const rank = groups.map((g) => sorted.indexOf(g[0]!));
  // Output group order `rank`: [0, 2, 1] or [1, 0] is one batched matrix transpose.
  if (rank.length === 2 && rank[0] === 1 && rank[1] === 0) return [1, sizes[1]!, sizes[0]!];
  if (rank.length === 3 && rank[0] === 0 && rank[1] === 2 && rank[2] === 1) return [sizes[0]!, sizes[2]!, sizes[1]!];
  return null;
}
