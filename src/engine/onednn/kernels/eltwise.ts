/**
 * Relu, Step, Add and Multiply as OpenMP loops (native/onednn/eltwise.cc). Broadcasts other than the ones
 * broadcastLayout describes, and non-float32 dtypes, fall back to the cpu kernels.
 */
import type { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import { tf } from '../../tf.js';
import { countNative } from '../../kernel_stats.js';
import { RELU_GRAD, registerReluGradient } from '../../../ops/relu_grad.js';
import type { NativeAddon } from '../native.js';
import { f32, requireF32, type NativeKernel, outputArray } from './common.js';
import { sizeOf } from '../../../util/values.js';

// Codes shared with native/onednn/eltwise.cc.
const UNARY = { relu: 0, step: 1 } as const;
const BINARY = { add: 0, mul: 1, reluGrad: 2 } as const;

type EltwiseAddon = Required<Pick<NativeAddon, 'eltwiseUnary' | 'eltwiseBinary'>>;

function eltwise(addon: NativeAddon): EltwiseAddon | null {
  return typeof addon.eltwiseUnary === 'function' && typeof addon.eltwiseBinary === 'function' ? (addon as EltwiseAddon) : null;
}

function unary(op: number, alphaOf: (attrs: unknown) => number): NativeKernel {
  return ({ inputs, attrs }, backend, addon) => {
    const native = eltwise(addon);
    const { x } = inputs as { x: tf.TensorInfo };
    const xs = f32(backend, x);
    if (!native || !xs) return null;
    const out = outputArray(xs.length);
    native.eltwiseUnary(xs, out, op, alphaOf(attrs));
    return backend.makeTensorInfo([...x.shape], 'float32', out);
  };
}

/**
 * The output viewed as [outer, mid, inner] with `shape` broadcast as [outer, 1, inner], or null when
 * its broadcast dimensions are not one contiguous run (an outer product, say): the native loop only
 * handles the former, which covers same shape, scalars, per-channel vectors, [N,1] rows and [N,1,1,C].
 */
export function broadcastLayout(shape: readonly number[], outShape: readonly number[]): [number, number, number] | null {
  if (shape.length > outShape.length) return null;
  const padded = [...new Array<number>(outShape.length - shape.length).fill(1), ...shape];
  const broadcast = outShape.map((d, i) => padded[i] !== d).map((b, i) => (b ? i : -1)).filter((i) => i >= 0);
  const size = sizeOf(outShape);
  if (broadcast.length === 0) return [1, 1, size];
  const lo = broadcast[0]!;
  const hi = broadcast[broadcast.length - 1]!;
  for (let d = lo; d <= hi; d++) if (padded[d] !== 1) return null;
  return [sizeOf(outShape.slice(0, lo)), sizeOf(outShape.slice(lo, hi + 1)), sizeOf(outShape.slice(hi + 1))];
}

function binary(op: number): NativeKernel {
  return ({ inputs }, backend, addon) => {
    const native = eltwise(addon);
    const { a, b } = inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
    const as = f32(backend, a);
    const bs = f32(backend, b);
    if (!native || !as || !bs) return null;
    let outShape: number[];
    try {
      outShape = tf.backend_util.assertAndGetBroadcastShape(a.shape, b.shape);
    } catch {
      return null;
    }
    const size = sizeOf(outShape);
    if (size === 0) return null;
    // One operand must fill the output; the other's layout is the one the loop follows.
    const layout = as.length === size ? broadcastLayout(b.shape, outShape) : bs.length === size ? broadcastLayout(a.shape, outShape) : null;
    if (!layout) return null;
    const out = outputArray(size);
    native.eltwiseBinary(as, bs, out, op, Int32Array.from(layout));
    return backend.makeTensorInfo(outShape, 'float32', out);
  };
}

/**
 * RELU_GRAD (src/ops/relu_grad.ts) as one native pass, and the Relu gradient that runs it. An addon
 * without the element-wise kernels registers neither: tfjs' own gradient stays.
 */
export function registerReluGradKernel(backendName: string, addon: NativeAddon): boolean {
  const native = eltwise(addon);
  if (!native) return false;
  tf.registerKernel({
    kernelName: RELU_GRAD,
    backendName,
    kernelFunc: ({ inputs, backend }) => {
      const cpu = backend as MathBackendCPU;
      const { dy, x } = inputs as { dy: tf.TensorInfo; x: tf.TensorInfo };
      const size = sizeOf(x.shape);
      const out = outputArray(size);
      native.eltwiseBinary(requireF32(cpu, dy, RELU_GRAD, 'dy', size), requireF32(cpu, x, RELU_GRAD, 'x', size), out, BINARY.reluGrad, Int32Array.from([1, 1, size]));
      countNative(RELU_GRAD);
      return cpu.makeTensorInfo([...x.shape], 'float32', out);
    },
  });
  registerReluGradient();
  return true;
}

export const relu = unary(UNARY.relu, () => 0);
export const step = unary(UNARY.step, (attrs) => (attrs as tf.StepAttrs).alpha);
export const add = binary(BINARY.add);
export const multiply = binary(BINARY.mul);

/**
 * Sum and Mean over one contiguous run of axes (global average pooling's [1, 2], a batch axis 0, a
 * row's last axis): the cpu kernels transpose the reduced axes innermost first, a full copy.
 */
function reduce(mean: boolean): NativeKernel {
  return ({ inputs, attrs }, backend, addon) => {
    const { x } = inputs as { x: tf.TensorInfo };
    const { axis, keepDims } = attrs as unknown as tf.SumAttrs;
    const xs = f32(backend, x);
    if (typeof addon.reduceMid !== 'function' || !xs || xs.length === 0) return null;
    const axes = tf.util.parseAxisParam(axis, x.shape).sort((p, q) => p - q);
    if (axes.length === 0 || axes.some((a, i) => i > 0 && a !== axes[i - 1]! + 1)) return null;
    const lo = axes[0]!;
    const hi = axes[axes.length - 1]!;
    const params = Int32Array.from([sizeOf(x.shape.slice(0, lo)), sizeOf(x.shape.slice(lo, hi + 1)), sizeOf(x.shape.slice(hi + 1))]);
    const out = new Float32Array(params[0]! * params[2]!);
    addon.reduceMid(xs, out, params, mean);
    const outShape = keepDims ? x.shape.map((d, i) => (i >= lo && i <= hi ? 1 : d)) : x.shape.filter((_, i) => i < lo || i > hi);
    return backend.makeTensorInfo(outShape, 'float32', out);
  };
}

export const sum = reduce(false);
export const mean = reduce(true);
