/**
 * Layout kernels: permutations, slices, tiles, reversals and splits end in the strided copy or the
 * tiled matrix transpose of native/cuda/kernels/transpose.cu; concatenation, padding, gather and
 * one-hot have kernels of their own in native/cuda/kernels/layout.cu. Every kernel moves 4-byte words,
 * so float32, int32 and bool (stored as int32) share them.
 */
import { tf } from '../../tf.js';
import { sizeOf } from '../../../util/values.js';
import type { CudaBackend } from '../backend.js';
import { addonOf, alias, type CudaKernel, type KernelTable, output } from './common.js';
import { asMatrixTranspose, copyStrided, rowMajorStrides, transposeMatrices } from './strided.js';

interface LayoutAddon {
  concat(dst: number, rows: number, srcs: Float64Array, widths: Int32Array): void;
  pad(src: number, dst: number, mode: number, value: number, inShape: Int32Array, before: Int32Array, outShape: Int32Array): void;
  gather(x: number, indices: number, out: number, batch: number, outer: number, dimSize: number, count: number, slice: number): void;
  oneHot(indices: number, out: number, count: number, depth: number, on: number, off: number): void;
}


/** dtypes whose elements are one 4-byte word on the device, which every kernel here moves. */
function isWordType(dtype: tf.DataType): boolean {
  return dtype === 'float32' || dtype === 'int32' || dtype === 'bool';
}

/**
 * A fresh tensor of `shape` = x read through `strides` from element `offset` (see copyStrided), or
 * null when the view has too many dimensions for the kernel.
 */
function gathered(backend: CudaBackend, x: tf.TensorInfo, shape: number[], strides: number[], offset = 0): tf.TensorInfo | null {
  const out = output(backend, shape, x.dtype);
  if (!copyStrided(backend, x.dtype, backend.ptr(x), out.ptr, shape, strides, offset)) {
    backend.disposeIntermediateTensorInfo(out.info);
    return null;
  }
  return out.info;
}

/** x with its dimensions permuted (out dimension d = x dimension perm[d]); null if no kernel fits. */
export function permute(backend: CudaBackend, x: tf.TensorInfo, perm: readonly number[]): tf.TensorInfo | null {
  if (x.dtype === 'string') return null;
  const outShape = perm.map((p) => x.shape[p]!);
  const matrix = x.dtype === 'complex64' ? null : asMatrixTranspose(x.shape, perm);
  if (matrix) {
    const out = output(backend, outShape, x.dtype);
    transposeMatrices(backend, backend.ptr(x), out.ptr, ...matrix);
    return out.info;
  }
  const inStrides = rowMajorStrides(x.shape);
  return gathered(
    backend,
    x,
    outShape,
    perm.map((p) => inStrides[p]!),
  );
}

const transpose: CudaKernel = ({ inputs, attrs }, backend) => {
  const { x } = inputs as { x: tf.TensorInfo };
  const { perm } = attrs as unknown as tf.TransposeAttrs;
  return permute(backend, x, perm);
};

/** x[begin + i] for i over `shape` (a box inside x). */
function sliceOf(backend: CudaBackend, x: tf.TensorInfo, begin: readonly number[], shape: number[]): tf.TensorInfo | null {
  const strides = rowMajorStrides(x.shape);
  const offset = begin.reduce((a, b, d) => a + b * strides[d]!, 0);
  return gathered(backend, x, shape, strides, offset);
}

const slice: CudaKernel = ({ inputs, attrs }, backend) => {
  const { x } = inputs as { x: tf.TensorInfo };
  const { begin, size: sizes } = attrs as unknown as tf.SliceAttrs;
  if (!isWordType(x.dtype)) return null;
  const [$begin, $size] = tf.slice_util.parseSliceParams(x, begin, sizes);
  tf.slice_util.assertParamsValid(x, $begin!, $size!);
  return sliceOf(backend, x, $begin!, $size!);
};

/** tfjs' own mask and stride resolution (slice_util.sliceInfo), then one strided copy. */
const stridedSlice: CudaKernel = ({ inputs, attrs }, backend) => {
  const { x } = inputs as { x: tf.TensorInfo };
  const a = attrs as unknown as tf.StridedSliceAttrs;
  if (!isWordType(x.dtype)) return null;
  const info = tf.slice_util.sliceInfo(x.shape, a.begin, a.end, a.strides, a.beginMask, a.endMask, a.ellipsisMask, a.newAxisMask, a.shrinkAxisMask);
  if (info.isIdentity) return alias(backend, x, info.finalShape);
  // The dense view over every dimension of x (1 on shrunk ones), which finalShape relabels. (The cpu
  // kernel's general path reads finalShapeSparse, which lacks the shrunk dimensions, as if it had them,
  // and so returns other elements when a shrink mask meets a non-unit stride; this follows TensorFlow.)
  const xStrides = rowMajorStrides(x.shape);
  const offset = info.begin.reduce((sum, b, d) => sum + b * xStrides[d]!, 0);
  const shape = tf.slice_util.computeOutShape(info.begin, info.end, info.strides).map((s) => Math.max(s, 0));
  const out = gathered(
    backend,
    x,
    shape,
    xStrides.map((s, d) => s * info.strides[d]!),
    offset,
  );
  if (!out) return null;
  return { ...out, shape: info.finalShape };
};

/** [rows, widths[s]] matrices side by side into one fresh [rows, sum] tensor. */
function sideBySide(backend: CudaBackend, parts: tf.TensorInfo[], rows: number, widths: number[], outShape: number[]): tf.TensorInfo {
  const out = output(backend, outShape, parts[0]!.dtype);
  addonOf<LayoutAddon>(backend).concat(out.ptr, rows, Float64Array.from(parts, (t) => backend.ptr(t)), Int32Array.from(widths));
  return out.info;
}

const concat: CudaKernel = ({ inputs, attrs }, backend) => {
  const all = inputs as unknown as tf.TensorInfo[];
  const { axis } = attrs as unknown as tf.ConcatAttrs;
  const dtype = all[0]!.dtype;
  if (!isWordType(dtype) || all.some((t) => t.dtype !== dtype)) return null;
  const $axis = tf.util.parseAxisParam(axis, all[0]!.shape)[0]!;
  tf.backend_util.assertParamsConsistent(
    all.map((t) => t.shape),
    $axis,
  );
  const outShape = tf.backend_util.computeOutShape(
    all.map((t) => t.shape),
    $axis,
  );
  if (sizeOf(outShape) === 0) return output(backend, outShape, dtype).info;
  const parts = all.filter((t) => sizeOf(t.shape) > 0);
  if (parts.length === 1) return alias(backend, parts[0]!, outShape);
  const rows = sizeOf(outShape.slice(0, $axis));
  return sideBySide(
    backend,
    parts,
    rows,
    parts.map((t) => sizeOf(t.shape.slice($axis))),
    outShape,
  );
};

const pack: CudaKernel = ({ inputs, attrs }, backend) => {
  const all = inputs as unknown as tf.TensorInfo[];
  const { axis } = attrs as unknown as tf.PackAttrs;
  const shape = all[0]!.shape;
  const dtype = all[0]!.dtype;
  if (!isWordType(dtype)) return null;
  for (const t of all) {
    tf.util.assertShapesMatch(shape, t.shape, 'All tensors passed to stack must have matching shapes');
    tf.util.assert(dtype === t.dtype, () => 'All tensors passed to stack must have matching dtypes');
  }
  const $axis = axis < 0 ? axis + shape.length + 1 : axis;
  const outShape = [...shape.slice(0, $axis), all.length, ...shape.slice($axis)];
  if (all.length === 1) return alias(backend, all[0]!, outShape);
  if (sizeOf(outShape) === 0) return output(backend, outShape, dtype).info;
  const width = sizeOf(shape.slice($axis));
  return sideBySide(
    backend,
    all,
    sizeOf(shape.slice(0, $axis)),
    all.map(() => width),
    outShape,
  );
};

/** The pieces of x along `axis` with the given lengths, each a fresh tensor. */
function split(backend: CudaBackend, x: tf.TensorInfo, axis: number, lengths: number[], squeeze: boolean): tf.TensorInfo[] | null {
  const strides = rowMajorStrides(x.shape);
  const pieces: tf.TensorInfo[] = [];
  let begin = 0;
  for (const length of lengths) {
    const shape = [...x.shape];
    shape[axis] = length;
    const piece = gathered(backend, x, shape, strides, begin * strides[axis]!);
    if (!piece) {
      for (const p of pieces) backend.disposeIntermediateTensorInfo(p);
      return null;
    }
    pieces.push(squeeze ? { ...piece, shape: shape.filter((_, d) => d !== axis) } : piece);
    begin += length;
  }
  return pieces;
}

const unpack: CudaKernel = ({ inputs, attrs }, backend) => {
  const { value } = inputs as { value: tf.TensorInfo };
  const { axis } = attrs as unknown as tf.UnpackAttrs;
  if (!isWordType(value.dtype)) return null;
  const $axis = axis < 0 ? axis + value.shape.length : axis;
  return split(backend, value, $axis, new Array<number>(value.shape[$axis]!).fill(1), true);
};

const splitV: CudaKernel = ({ inputs, attrs }, backend) => {
  const { x } = inputs as { x: tf.TensorInfo };
  const { numOrSizeSplits, axis } = attrs as unknown as tf.SplitVAttrs;
  if (!isWordType(x.dtype)) return null;
  const $axis = tf.util.parseAxisParam(axis, x.shape)[0]!;
  const lengths = tf.backend_util.prepareSplitSize(x, numOrSizeSplits, $axis);
  return split(backend, x, $axis, lengths, false);
};

/** x with reps[d] copies along each dimension d of `axes`: x read as [..., reps[d], x_d, ...], stride 0 on the copies. */
function repeated(backend: CudaBackend, x: tf.TensorInfo, reps: readonly number[], axes: readonly number[]): tf.TensorInfo | null {
  const strides = rowMajorStrides(x.shape);
  const viewShape = x.shape.flatMap((s, d) => (axes.includes(d) ? [reps[d]!, s] : [s]));
  const viewStrides = x.shape.flatMap((_, d) => (axes.includes(d) ? [0, strides[d]!] : [strides[d]!]));
  const out = gathered(backend, x, viewShape, viewStrides);
  return out && { ...out, shape: x.shape.map((s, d) => (axes.includes(d) ? s * reps[d]! : s)) };
}

/**
 * Tile (and so BroadcastTo, which tfjs runs as Tile): one strided copy, or a few when the repeated
 * dimensions between unrepeated ones need more than the copy kernel's rank (three at a time fit).
 */
const tile: CudaKernel = ({ inputs, attrs }, backend) => {
  const { x } = inputs as { x: tf.TensorInfo };
  const { reps } = attrs as unknown as tf.TileAttrs;
  if (!isWordType(x.dtype)) return null;
  let pending = reps.flatMap((r, d) => (r !== 1 ? [d] : []));
  if (pending.length === 0) return gathered(backend, x, [...x.shape], rowMajorStrides(x.shape));
  let current = x;
  while (pending.length > 0) {
    let take = pending.length;
    let next = repeated(backend, current, reps, pending);
    while (!next && take > 1) next = repeated(backend, current, reps, pending.slice(0, --take));
    if (current !== x) backend.disposeIntermediateTensorInfo(current);
    if (!next) return null;
    current = next;
    pending = pending.slice(take);
  }
  return current;
};

const reverse: CudaKernel = ({ inputs, attrs }, backend) => {
  const { x } = inputs as { x: tf.TensorInfo };
  const { dims } = attrs as unknown as tf.ReverseAttrs;
  if (!isWordType(x.dtype)) return null;
  const axes = tf.util.parseAxisParam(dims, x.shape);
  const strides = rowMajorStrides(x.shape);
  let offset = 0;
  for (const d of axes) {
    offset += (x.shape[d]! - 1) * strides[d]!;
    strides[d] = -strides[d]!;
  }
  return gathered(backend, x, [...x.shape], strides, sizeOf(x.shape) > 0 ? offset : 0);
};

// ---- padding ----

const PAD_MODE = { constant: 0, reflect: 1, symmetric: 2 } as const;

/**
 * Dimensions merged where the index arithmetic allows: an unpadded dimension folds into the one before
 * it (for mirrored padding only when that one is unpadded too, since a mirror flips whole rows), and
 * unpadded size-1 dimensions drop out.
 */
export function padView(shape: readonly number[], paddings: ReadonlyArray<readonly [number, number]>, mirrored: boolean): { inShape: number[]; before: number[]; outShape: number[] } {
  const inShape: number[] = [];
  const before: number[] = [];
  const after: number[] = [];
  shape.forEach((s, d) => {
    const [b, a] = paddings[d]!;
    const last = inShape.length - 1;
    if (b === 0 && a === 0) {
      if (s === 1) return;
      if (last >= 0 && (!mirrored || (before[last] === 0 && after[last] === 0))) {
        inShape[last] = inShape[last]! * s;
        before[last] = before[last]! * s;
        after[last] = after[last]! * s;
        return;
      }
    }
    inShape.push(s);
    before.push(b);
    after.push(a);
  });
  if (inShape.length === 0) return { inShape: [1], before: [0], outShape: [1] };
  return { inShape, before, outShape: inShape.map((s, d) => before[d]! + s + after[d]!) };
}

/** The 32 bits of `value` as a dtype stores it, or null where the cpu kernel would store something else. */
function wordOf(value: number, dtype: tf.DataType): number | null {
  if (dtype === 'float32') return new Int32Array(Float32Array.of(value).buffer)[0]!;
  if (dtype === 'bool') return value === 0 || value === 1 ? value : null;
  return value | 0;
}

function pad(backend: CudaBackend, x: tf.TensorInfo, paddings: Array<[number, number]>, mode: keyof typeof PAD_MODE, value: number): tf.TensorInfo | null {
  const word = wordOf(value, x.dtype);
  if (!isWordType(x.dtype) || word === null) return null;
  const outShape = paddings.map((p, d) => p[0] + x.shape[d]! + p[1]);
  const out = output(backend, outShape, x.dtype);
  if (sizeOf(outShape) === 0) return out.info;
  const view = padView(x.shape, paddings, mode !== 'constant');
  if (view.inShape.length > 6) {
    backend.disposeIntermediateTensorInfo(out.info);
    return null;
  }
  addonOf<LayoutAddon>(backend).pad(
    backend.ptr(x),
    out.ptr,
    PAD_MODE[mode],
    word,
    Int32Array.from(view.inShape),
    Int32Array.from(view.before),
    Int32Array.from(view.outShape),
  );
  return out.info;
}

const padV2: CudaKernel = ({ inputs, attrs }, backend) => {
  const { x } = inputs as { x: tf.TensorInfo };
  const { paddings, constantValue } = attrs as unknown as tf.PadV2Attrs;
  return pad(backend, x, paddings, 'constant', constantValue);
};

const mirrorPad: CudaKernel = ({ inputs, attrs }, backend) => {
  const { x } = inputs as { x: tf.TensorInfo };
  const { paddings, mode } = attrs as unknown as tf.MirrorPadAttrs;
  if (sizeOf(x.shape) === 0) return null;
  return pad(backend, x, paddings, mode, 0);
};

// ---- gather, one-hot ----

/** Out-of-range indices give 0 here; the cpu kernel throws, which would need the indices on the host. */
const gatherV2: CudaKernel = ({ inputs, attrs }, backend) => {
  const { x, indices } = inputs as { x: tf.TensorInfo; indices: tf.TensorInfo };
  const { axis, batchDims } = attrs as unknown as tf.GatherV2Attrs;
  if (!isWordType(x.dtype) || indices.dtype !== 'int32') return null;
  const $axis = tf.util.parseAxisParam(axis, x.shape)[0]!;
  const info = tf.backend_util.segment_util.collectGatherOpShapeInfo(x, indices, $axis, batchDims ?? 0);
  const out = output(backend, info.outputShape, x.dtype);
  const count = sizeOf(indices.shape) / Math.max(info.batchSize, 1);
  if (sizeOf(info.outputShape) > 0) {
    addonOf<LayoutAddon>(backend).gather(backend.ptr(x), backend.ptr(indices), out.ptr, info.batchSize, info.outerSize, info.dimSize, count, info.sliceSize);
  }
  return out.info;
};

const oneHot: CudaKernel = ({ inputs, attrs }, backend) => {
  const { indices } = inputs as { indices: tf.TensorInfo };
  const { depth, onValue, offValue, dtype } = attrs as unknown as tf.OneHotAttrs;
  if (indices.dtype !== 'int32' || !isWordType(dtype)) return null;
  // The cpu kernel keeps its float32 values whatever the dtype, so integers only for int32 and bool.
  if (dtype !== 'float32' && !(Number.isInteger(onValue) && Number.isInteger(offValue))) return null;
  const on = dtype === 'float32' ? wordOf(onValue, dtype)! : onValue | 0;
  const off = dtype === 'float32' ? wordOf(offValue, dtype)! : offValue | 0;
  const out = output(backend, [...indices.shape, depth], dtype);
  const count = sizeOf(indices.shape);
  if (count * depth > 0) addonOf<LayoutAddon>(backend).oneHot(backend.ptr(indices), out.ptr, count, depth, on, off);
  return out.info;
};

export const LAYOUT_KERNELS: KernelTable = {
  [tf.Transpose]: transpose,
  [tf.Slice]: slice,
  [tf.StridedSlice]: stridedSlice,
  [tf.Concat]: concat,
  [tf.Pack]: pack,
  [tf.Unpack]: unpack,
  [tf.SplitV]: splitV,
  [tf.Tile]: tile,
  [tf.Reverse]: reverse,
  [tf.PadV2]: padV2,
  [tf.MirrorPad]: mirrorPad,
  [tf.GatherV2]: gatherV2,
  [tf.OneHot]: oneHot,
};
