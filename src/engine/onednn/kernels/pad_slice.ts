/**
 * PadV2 and Slice as block copies. The cpu kernels compute every element's source index through
 * generic coordinate arithmetic; here each maximal contiguous run (the trailing axes a box covers in
 * full) is one TypedArray copy. They are each other's gradients, and BiT's root (zero pad, then an
 * unpadded max-pool) spent more time in them than in its convolution. No addon needed: the copies are
 * memcpy-speed in JavaScript already.
 */
import { tf } from '../../tf.js';
import { f32, type NativeKernel, outputArray } from './common.js';
import { sizeOf } from '../../../util/values.js';

function stridesOf(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length).fill(1);
  for (let d = shape.length - 2; d >= 0; d--) strides[d] = strides[d + 1]! * shape[d + 1]!;
  return strides;
}

/**
 * Copies the box of extent `box` starting at `srcStart` in src (shape srcShape) to `dstStart` in dst
 * (shape dstShape). Trailing axes the box covers in full in both arrays merge into one run.
 */
export function copyBox(
  src: Float32Array,
  srcShape: readonly number[],
  srcStart: readonly number[],
  dst: Float32Array,
  dstShape: readonly number[],
  dstStart: readonly number[],
  box: readonly number[],
): void {
  const rank = box.length;
  if (rank === 0 || sizeOf(box) === 0) {
    if (rank === 0) dst[0] = src[0]!;
    return;
  }
  const ss = stridesOf(srcShape);
  const ds = stridesOf(dstShape);
  // The run: the last axis, extended over earlier axes while every later axis is copied whole.
  let outer = rank - 1;
  let run = box[outer]!;
  while (outer > 0 && box[outer] === srcShape[outer] && box[outer] === dstShape[outer]) {
    outer--;
    run *= box[outer]!;
  }
  // Axes 0..outer-1 are iterated; axis `outer` is the first one inside the run.
  let srcBase = 0;
  let dstBase = 0;
  for (let d = 0; d < rank; d++) {
    srcBase += srcStart[d]! * ss[d]!;
    dstBase += dstStart[d]! * ds[d]!;
  }
  const idx = new Array<number>(outer).fill(0);
  for (;;) {
    let so = srcBase;
    let dO = dstBase;
    for (let d = 0; d < outer; d++) {
      so += idx[d]! * ss[d]!;
      dO += idx[d]! * ds[d]!;
    }
    dst.set(src.subarray(so, so + run), dO);
    let d = outer - 1;
    while (d >= 0 && ++idx[d]! === box[d]!) idx[d--] = 0;
    if (d < 0) return;
  }
}

export const padV2: NativeKernel = ({ inputs, attrs }, backend) => {
  const { x } = inputs as { x: tf.TensorInfo };
  const { paddings, constantValue } = attrs as unknown as tf.PadV2Attrs;
  const xs = f32(backend, x);
  if (!xs || x.shape.length === 0) return null;
  const outShape = x.shape.map((d, i) => paddings[i]![0] + d + paddings[i]![1]);
  const out = new Float32Array(sizeOf(outShape));
  if (constantValue !== 0) out.fill(constantValue);
  copyBox(xs, x.shape, x.shape.map(() => 0), out, outShape, paddings.map((p) => p[0]), x.shape);
  return backend.makeTensorInfo(outShape, 'float32', out);
};

export const slice: NativeKernel = ({ inputs, attrs }, backend) => {
  const { x } = inputs as { x: tf.TensorInfo };
  const { begin, size } = attrs as unknown as tf.SliceAttrs;
  const xs = f32(backend, x);
  if (!xs || x.shape.length === 0) return null;
  // tfjs normalises begin/size before the kernel; -1 sizes are resolved here the same way.
  const b = x.shape.map((_, i) => (typeof begin === 'number' ? begin : begin[i] ?? 0));
  const s = x.shape.map((d, i) => {
    const v = typeof size === 'number' ? size : size[i] ?? -1;
    return v === -1 ? d - b[i]! : v;
  });
  if (b.some((v, i) => v < 0 || v + s[i]! > x.shape[i]!)) return null;
  const out = outputArray(sizeOf(s));
  copyBox(xs, x.shape, b, out, s, s.map(() => 0), s);
  return backend.makeTensorInfo(s, 'float32', out);
};
