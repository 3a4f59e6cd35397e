/**
 * Reductions (Sum, Mean, Prod, Max, Min, All, Any, ArgMax, ArgMin), Softmax and TopK on the device:
 * native/cuda/kernels/reduce.cu. The input is viewed as [outer, mid, inner] with mid the reduced axes;
 * axes that are not one contiguous run are transposed to the end first, as the cpu backend does.
 */
import { tf } from '../../tf.js';
import { sizeOf } from '../../../util/values.js';
import type { CudaBackend } from '../backend.js';
import { addonOf, type CudaKernel, dtypeCode, type KernelTable, output } from './common.js';
import { permute } from './layout.js';

interface ReduceAddon {
  reduce(op: number, dtype: number, x: number, out: number, outer: number, mid: number, inner: number): void;
  softmax(x: number, y: number, rows: number, n: number): void;
  topK(dtype: number, x: number, values: number, indices: number, rows: number, n: number, k: number): void;
}

/** Operation codes of native/cuda/kernels/reduce.cu. */
const OP = { sum: 0, mean: 1, prod: 2, max: 3, min: 4, argMax: 5, argMin: 6 } as const;
type Op = keyof typeof OP;

/** The largest k TopK takes natively (its selection is sorted in shared memory). */
export const TOPK_MAX = 1024;


/**
 * `shape` as [outer, mid, inner] with mid the product of `axes`, when those are one contiguous run
 * once size-1 dimensions are set aside; null when they are not.
 */
export function reductionView(shape: readonly number[], axes: readonly number[]): [number, number, number] | null {
  let outer = 1;
  let mid = 1;
  let inner = 1;
  let phase: 'before' | 'in' | 'after' = 'before';
  for (let d = 0; d < shape.length; d++) {
    const s = shape[d]!;
    if (s === 1) continue;
    if (axes.includes(d)) {
      if (phase === 'after') return null;
      phase = 'in';
      mid *= s;
    } else if (phase === 'before') {
      outer *= s;
    } else {
      phase = 'after';
      inner *= s;
    }
  }
  return [outer, mid, inner];
}

/** What the cpu kernels give for a reduction over no elements. */
function emptyReduction(op: Op, dtype: tf.DataType, n: number): Float32Array | Int32Array {
  const fill = op === 'prod' ? 1 : (op === 'max' || op === 'min') && dtype === 'float32' ? NaN : 0;
  return dtype === 'float32' ? new Float32Array(n).fill(fill) : new Int32Array(n).fill(fill);
}

/** x reduced over `axes` by `op` into a fresh tensor of `outDtype`; null for dtypes with no kernel. */
function reduce(backend: CudaBackend, x: tf.TensorInfo, axes: number[], op: Op, outDtype: tf.DataType, keepDims: boolean): tf.TensorInfo | null {
  const code = dtypeCode(x.dtype);
  if (code === null) return null;
  const [outShape, reduceShape] = tf.backend_util.computeOutAndReduceShapes(x.shape, axes);
  const shape = keepDims ? tf.backend_util.expandShapeToKeepDim(outShape, axes) : outShape;
  const outSize = sizeOf(outShape);
  const mid = sizeOf(reduceShape);
  if (outSize === 0) return output(backend, shape, outDtype).info;
  if (mid === 0) return backend.makeTensorInfo(shape, outDtype, emptyReduction(op, outDtype, outSize));
  let view = reductionView(x.shape, axes);
  let source = x;
  if (!view) {
    const perm = tf.backend_util.getAxesPermutation(axes, x.shape.length);
    const moved = perm && permute(backend, x, perm);
    if (!moved) return null;
    source = moved;
    view = [outSize, mid, 1];
  }
  const out = output(backend, shape, outDtype);
  addonOf<ReduceAddon>(backend).reduce(OP[op], code, backend.ptr(source), out.ptr, ...view);
  if (source !== x) backend.disposeIntermediateTensorInfo(source);
  return out.info;
}

interface ReduceAttrs {
  axis: number | number[];
  keepDims: boolean;
}

/** A reduction kernel over attrs.axis: `op` with the output dtype `outDtype` gives for x's dtype. */
function reduction(op: Op, outDtype: (x: tf.DataType) => tf.DataType | null): CudaKernel {
  return ({ inputs, attrs }, backend) => {
    const { x } = inputs as { x: tf.TensorInfo };
    const { axis, keepDims } = attrs as unknown as ReduceAttrs;
    const dtype = outDtype(x.dtype);
    if (dtype === null) return null;
    return reduce(backend, x, tf.util.parseAxisParam(axis, x.shape), op, dtype, keepDims);
  };
}

/** Sum and Prod: bool counts as int32 (tfjs' upcastType(dtype, 'int32')). */
const upcast = (dtype: tf.DataType) => (dtype === 'bool' ? 'int32' : dtype);
const same = (dtype: tf.DataType) => dtype;
// All and Any of 0/1 values are their min and max.
const boolOnly = (dtype: tf.DataType) => (dtype === 'bool' ? dtype : null);

const max: CudaKernel = ({ inputs, attrs }, backend) => {
  const { x } = inputs as { x: tf.TensorInfo };
  const { reductionIndices, keepDims } = attrs as unknown as tf.MaxAttrs;
  return reduce(backend, x, tf.util.parseAxisParam(reductionIndices, x.shape), 'max', x.dtype, keepDims);
};

function argReduction(op: 'argMax' | 'argMin'): CudaKernel {
  return ({ inputs, attrs }, backend) => {
    const { x } = inputs as { x: tf.TensorInfo };
    const { axis } = attrs as unknown as tf.ArgMaxAttrs;
    return reduce(backend, x, [tf.util.parseAxisParam(axis, x.shape)[0]!], op, 'int32', false);
  };
}

/** Over the last axis only, as the cpu kernel (which throws for any other). */
const softmax: CudaKernel = ({ inputs, attrs }, backend) => {
  const { logits } = inputs as { logits: tf.TensorInfo };
  const { dim } = attrs as unknown as tf.SoftmaxAttrs;
  const rank = logits.shape.length;
  if (logits.dtype !== 'float32' || rank === 0 || (dim !== -1 && dim !== rank - 1)) return null;
  const n = logits.shape[rank - 1]!;
  const out = output(backend, [...logits.shape], 'float32');
  if (sizeOf(logits.shape) > 0) addonOf<ReduceAddon>(backend).softmax(backend.ptr(logits), out.ptr, sizeOf(logits.shape) / n, n);
  return out.info;
};

/**
 * The k largest along the last axis, value descending and ties by position as the cpu kernel sorts
 * them. sorted: false gets the same order (the cpu's unsorted order is an artefact of its selection).
 */
const topK: CudaKernel = ({ inputs, attrs }, backend) => {
  const { x } = inputs as { x: tf.TensorInfo };
  const { k } = attrs as unknown as tf.TopKAttrs;
  if ((x.dtype !== 'float32' && x.dtype !== 'int32') || x.shape.length === 0 || k > TOPK_MAX) return null;
  const n = x.shape[x.shape.length - 1]!;
  if (k > n) return null;
  const shape = [...x.shape.slice(0, -1), k];
  const values = output(backend, shape, x.dtype);
  const indices = output(backend, shape, 'int32');
  const rows = sizeOf(x.shape.slice(0, -1));
  if (rows > 0 && k > 0) addonOf<ReduceAddon>(backend).topK(dtypeCode(x.dtype)!, backend.ptr(x), values.ptr, indices.ptr, rows, n, k);
  return [values.info, indices.info];
};

export const REDUCE_KERNELS: KernelTable = {
  [tf.Sum]: reduction('sum', upcast),
  [tf.Mean]: reduction('mean', () => 'float32'),
  [tf.Prod]: reduction('prod', upcast),
  [tf.Max]: max,
  [tf.Min]: reduction('min', same),
  [tf.All]: reduction('min', boolOnly),
  [tf.Any]: reduction('max', boolOnly),
  [tf.ArgMax]: argReduction('argMax'),
  [tf.ArgMin]: argReduction('argMin'),
  [tf.Softmax]: softmax,
  [tf.TopK]: topK,
};
