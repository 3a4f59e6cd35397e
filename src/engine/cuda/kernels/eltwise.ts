/**
 * Element-wise kernels: unary maps, binary maps with numpy broadcasting, comparisons, Select, Cast,
 * fills and AddN, all in native/cuda/kernels/eltwise.cu. Each reproduces the cpu kernel's values and
 * output dtype (int32 results truncate like an Int32Array store, FloorDiv gives int32, comparisons
 * bool); a dtype combination the cpu handles in some other way returns null and runs on the host.
 *
 * Broadcasting is resolved here: the output shape, each input's strides over it (0 where it is
 * broadcast), and dimensions merged wherever both inputs step over them together, so that
 * [N,H,W,C] + [C] reaches the device as [NHW, C] and same-shape or scalar operands as one flat
 * dimension (the native side's vectorised fast path).
 *
 * Half storage (engine.precision mixed16): the ops a mixed16 step runs on half-stored activations and
 * gradients (the ReLU gradient's Step and product, gradient and residual sums, ...) read the halves
 * themselves, with no float32 copy (backend.ptr's), and give the float32 path's bits. Those whose
 * results stay on the half grid (ReLU, sign changes, Step with alpha on the grid) store them as halves.
 */
import { tf } from '../../tf.js';
import type { CudaBackend } from '../backend.js';
import { sizeOf } from '../../../util/values.js';
import { addonOf, alias, type CudaKernel, type KernelArgs, type KernelTable, dtypeCode, output } from './common.js';
import { MAX_RANK, rowMajorStrides } from './strided.js';
import { roundToFloat16 } from '../../../io/float16.js';

/** The functions of native/cuda/kernels/eltwise.cu. */
export interface EltwiseAddon {
  /** storage: STORAGE bits (x, y stored as halves). */
  eltwiseUnary(op: number, dtype: number, x: number, y: number, n: number, alpha: number, beta: number, storage?: number): void;
  /** storage: STORAGE bits (a, b stored as halves). */
  eltwiseBinary(
    op: number, dtype: number, a: number, b: number, out: number, shape: Int32Array, aStrides: Int32Array, bStrides: Int32Array, storage?: number,
  ): void;
  eltwiseSelect(conditionDtype: number, condition: number, t: number, e: number, out: number, n: number): void;
  eltwiseFill(dst: number, n: number, bits: number): void;
  eltwiseAddN(dtype: number, out: number, n: number, ...inputs: number[]): void;
}

/** Unary op codes: UnaryCode in native/cuda/kernels/eltwise.cu, in the same order. */
export const UNARY = {
  Abs: 0,
  Neg: 1,
  Sqrt: 2,
  Rsqrt: 3,
  Square: 4,
  Exp: 5,
  Expm1: 6,
  Log: 7,
  Log1p: 8,
  Relu: 9,
  Relu6: 10,
  Step: 11,
  Sign: 12,
  Reciprocal: 13,
  Sigmoid: 14,
  Tanh: 15,
  Softplus: 16,
  Elu: 17,
  LeakyRelu: 18,
  Floor: 19,
  Ceil: 20,
  Round: 21,
  IsNan: 22,
  IsInf: 23,
  IsFinite: 24,
  Erf: 25,
  Sin: 26,
  Cos: 27,
  ClipByValue: 28,
  LogicalNot: 29,
  ToFloat: 30,
  ToInt: 31,
  ToBool: 32,
} as const;

/** Binary op codes: BinaryCode in native/cuda/kernels/eltwise.cu, in the same order. */
export const BINARY = {
  Add: 0,
  Sub: 1,
  Multiply: 2,
  RealDiv: 3,
  FloorDiv: 4,
  Maximum: 5,
  Minimum: 6,
  Pow: 7,
  SquaredDifference: 8,
  Mod: 9,
  Atan2: 10,
  Prelu: 11,
  Equal: 12,
  NotEqual: 13,
  Greater: 14,
  GreaterEqual: 15,
  Less: 16,
  LessEqual: 17,
  LogicalAnd: 18,
  LogicalOr: 19,
} as const;

/** Storage bits: which operands are stored as halves (Storage in native/cuda/kernels/eltwise.cu). */
export const STORAGE = { halfIn: 1, halfOut: 2, halfA: 1, halfB: 2 } as const;

/** Unary ops that read half-stored inputs; `keepsGrid`: their results are on the half grid too. */
const HALF_UNARY: ReadonlyMap<number, { keepsGrid: (alpha: number) => boolean }> = new Map([
  [UNARY.Abs, { keepsGrid: () => true }],
  [UNARY.Neg, { keepsGrid: () => true }],
  // x where it is NaN, 1 and alpha: on the grid when alpha is.
  [UNARY.Step, { keepsGrid: (alpha: number) => roundToFloat16(Math.fround(alpha)) === Math.fround(alpha) }],
  [UNARY.Square, { keepsGrid: () => false }],
]);

/** Binary ops that read half-stored inputs (float32 output). */
const HALF_BINARY: ReadonlySet<number> = new Set([
  BINARY.Add, BINARY.Sub, BINARY.Multiply, BINARY.RealDiv, BINARY.Maximum, BINARY.Minimum, BINARY.Pow,
]);

/** The output dtype for these input dtypes, or null where the kernel leaves the case to the cpu. */
type DtypeRule = (...dtypes: tf.DataType[]) => tf.DataType | null;

const numeric = (d: tf.DataType): boolean => d === 'float32' || d === 'int32';
/** float32 or int32 on both sides, the output in the same dtype. */
const sameNumeric: DtypeRule = (a, b = a) => (a === b && numeric(a!) ? a! : null);
const floatOnly: DtypeRule = (...ds) => (ds.every((d) => d === 'float32') ? 'float32' : null);
/** Comparisons: any two inputs stored alike on the device (float32, or int32/bool). */
const comparable: DtypeRule = (a, b) => (dtypeCode(a!) !== null && dtypeCode(a!) === dtypeCode(b!) ? 'bool' : null);
const boolOnly: DtypeRule = (...ds) => (ds.every((d) => d === 'bool') ? 'bool' : null);

// ---- broadcasting ----

export interface BroadcastView {
  shape: number[];
  /** Per input, its stride (in elements) along each dimension of shape; 0 where it is broadcast. */
  strides: number[][];
}

/**
 * The inputs' strides over the broadcast output shape, with size-1 dimensions dropped and
 * neighbouring dimensions merged wherever every input steps over them together.
 */
export function broadcastView(outShape: readonly number[], inputShapes: ReadonlyArray<readonly number[]>): BroadcastView {
  const rank = outShape.length;
  const full = inputShapes.map((shape) => {
    const own = rowMajorStrides(shape);
    return outShape.map((_, d) => {
      const k = d - (rank - shape.length);
      return k < 0 || shape[k] === 1 ? 0 : own[k]!;
    });
  });
  const shape: number[] = [];
  const strides: number[][] = inputShapes.map(() => []);
  for (let d = 0; d < rank; d++) {
    const size = outShape[d]!;
    if (size === 1) continue;
    const last = shape.length - 1;
    if (last >= 0 && full.every((s, i) => strides[i]![last] === s[d]! * size)) {
      shape[last] = shape[last]! * size;
      full.forEach((s, i) => (strides[i]![last] = s[d]!));
    } else {
      shape.push(size);
      full.forEach((s, i) => strides[i]!.push(s[d]!));
    }
  }
  if (shape.length === 0) return { shape: [1], strides: inputShapes.map(() => [0]) };
  return { shape, strides };
}

// ---- kernels ----

function addon(backend: CudaBackend): EltwiseAddon {
  return addonOf<EltwiseAddon>(backend);
}


function unaryKernel(op: number, rule: DtypeRule, attrsOf?: (attrs: KernelArgs['attrs']) => [number, number]): CudaKernel {
  const halves = HALF_UNARY.get(op);
  return ({ inputs, attrs }, backend) => {
    const { x } = inputs as { x: tf.TensorInfo };
    const dtype = rule(x.dtype);
    if (dtype === null) return null;
    const n = sizeOf(x.shape);
    const [alpha, beta] = attrsOf ? attrsOf(attrs) : [0, 0];
    if (halves && backend.isHalf(x)) {
      const keep = halves.keepsGrid(alpha);
      const out = keep ? backend.makeHalfTensorInfo([...x.shape]) : output(backend, [...x.shape], dtype).info;
      const storage = STORAGE.halfIn | (keep ? STORAGE.halfOut : 0);
      if (n > 0) addon(backend).eltwiseUnary(op, dtypeCode(x.dtype)!, backend.storagePtr(x), backend.storagePtr(out), n, alpha, beta, storage);
      return out;
    }
    const out = output(backend, [...x.shape], dtype);
    if (n > 0) addon(backend).eltwiseUnary(op, dtypeCode(x.dtype)!, backend.ptr(x), out.ptr, n, alpha, beta);
    return out.info;
  };
}

interface HalvesAddon {
  reluHalves(src: number, dst: number, n: number): void;
}

/**
 * An op that maps values on the half grid to values on it (ReLU: a value or zero) keeps a half-stored
 * input half-stored: the mixed16 activations it passes on (saved for the backward pass, and rounded
 * again by the next layer for nothing) take half the memory. Other inputs take `kernel`.
 */
function keepsHalves(kernel: CudaKernel, native: keyof HalvesAddon): CudaKernel {
  return (args, backend) => {
    const { x } = args.inputs as { x: tf.TensorInfo };
    if (!backend.isHalf(x)) return kernel(args, backend);
    const out = backend.makeHalfTensorInfo([...x.shape]);
    const n = sizeOf(x.shape);
    if (n > 0) addonOf<HalvesAddon>(backend)[native](backend.storagePtr(x), backend.storagePtr(out), n);
    return out;
  };
}

function binaryKernel(op: number, rule: DtypeRule, names: [string, string] = ['a', 'b']): CudaKernel {
  const readsHalves = HALF_BINARY.has(op);
  return ({ inputs }, backend) => {
    const named = inputs as Record<string, tf.TensorInfo>;
    const a = named[names[0]]!;
    const b = named[names[1]]!;
    const dtype = rule(a.dtype, b.dtype);
    if (dtype === null) return null;
    const outShape = tf.backend_util.assertAndGetBroadcastShape(a.shape, b.shape);
    const n = tf.util.sizeFromShape(outShape);
    const view = broadcastView(outShape, [a.shape, b.shape]);
    // The broadcast kernel indexes in 32 bits; a flat view has no such limit.
    if (view.shape.length > MAX_RANK || (view.shape.length > 1 && n >= 2 ** 31)) return null;
    const out = output(backend, outShape, dtype);
    if (n > 0) {
      const storage = readsHalves ? (backend.isHalf(a) ? STORAGE.halfA : 0) | (backend.isHalf(b) ? STORAGE.halfB : 0) : 0;
      addon(backend).eltwiseBinary(
        op,
        dtypeCode(a.dtype)!,
        storage & STORAGE.halfA ? backend.storagePtr(a) : backend.ptr(a),
        storage & STORAGE.halfB ? backend.storagePtr(b) : backend.ptr(b),
        out.ptr,
        Int32Array.from(view.shape),
        Int32Array.from(view.strides[0]!),
        Int32Array.from(view.strides[1]!),
        storage,
      );
    }
    return out.info;
  };
}

/** A tensor of `shape` with every element `bits` (the element's 32-bit pattern). */
function filled(backend: CudaBackend, shape: number[], dtype: tf.DataType, bits: number): tf.TensorInfo {
  const out = output(backend, shape, dtype);
  const n = tf.util.sizeFromShape(shape);
  if (n > 0) addon(backend).eltwiseFill(out.ptr, n, bits);
  return out.info;
}

/** The 32-bit pattern the cpu's typed array stores for `value` (Float32Array, Int32Array, Uint8Array). */
function fillBits(value: number, dtype: tf.DataType): number {
  if (dtype === 'float32') return new Int32Array(Float32Array.of(value).buffer)[0]!;
  if (dtype === 'bool') return (value | 0) & 0xff;
  return value | 0;
}

const fill: CudaKernel = ({ attrs }, backend) => {
  const { shape, value, dtype } = attrs as unknown as tf.FillAttrs;
  const $dtype = dtype ?? tf.util.inferDtype(value);
  if (dtypeCode($dtype) === null) return null;
  return filled(backend, [...shape], $dtype, fillBits(Number(value), $dtype));
};

function fillLike(value: number): CudaKernel {
  return ({ inputs }, backend) => {
    const { x } = inputs as { x: tf.TensorInfo };
    if (dtypeCode(x.dtype) === null) return null;
    return filled(backend, [...x.shape], x.dtype, fillBits(value, x.dtype));
  };
}

/**
 * The cpu's Cast: to the same dtype (or bool to int32, which the device stores alike) it shares the
 * input's memory; float to int32 truncates like an Int32Array store; to bool is x != 0.
 */
const cast: CudaKernel = ({ inputs, attrs }, backend) => {
  const { x } = inputs as { x: tf.TensorInfo };
  const { dtype } = attrs as unknown as tf.CastAttrs;
  if (dtypeCode(x.dtype) === null || dtypeCode(dtype) === null) return null;
  if (x.dtype === dtype || (x.dtype === 'bool' && dtype === 'int32')) {
    return alias(backend, x, [...x.shape], dtype);
  }
  const op = dtype === 'bool' ? UNARY.ToBool : dtype === 'int32' ? UNARY.ToInt : UNARY.ToFloat;
  const out = output(backend, [...x.shape], dtype);
  const n = sizeOf(x.shape);
  if (n > 0) addon(backend).eltwiseUnary(op, dtypeCode(x.dtype)!, backend.ptr(x), out.ptr, n, 0, 0);
  return out.info;
};

/**
 * tf.where's kernel. The cpu's Select only broadcasts a rank-1 condition over the rows of t and e
 * (and then reads the wrong elements), so anything but equal sizes is left to it.
 */
const select: CudaKernel = ({ inputs }, backend) => {
  const { condition, t, e } = inputs as { condition: tf.TensorInfo; t: tf.TensorInfo; e: tf.TensorInfo };
  const n = sizeOf(t.shape);
  const rowBroadcast = condition.shape.length === 1 && t.shape.length > 1 && tf.util.sizeFromShape(t.shape.slice(1)) !== 1;
  if (rowBroadcast || sizeOf(condition.shape) !== n || sizeOf(e.shape) !== n) return null;
  const conditionCode = dtypeCode(condition.dtype);
  if (conditionCode === null || dtypeCode(t.dtype) === null || dtypeCode(t.dtype) !== dtypeCode(e.dtype)) return null;
  const out = output(backend, [...t.shape], tf.upcastType(t.dtype, e.dtype));
  if (n > 0) addon(backend).eltwiseSelect(conditionCode, backend.ptr(condition), backend.ptr(t), backend.ptr(e), out.ptr, n);
  return out.info;
};

/** Inputs the native AddN takes per pass. */
const MAX_ADDENDS = 8;

/** One pass over up to eight inputs, then passes that add up to seven more to the output. */
const addN: CudaKernel = ({ inputs }, backend) => {
  const tensors = Array.isArray(inputs) ? (inputs as tf.TensorInfo[]) : Object.values(inputs as Record<string, tf.TensorInfo>);
  const first = tensors[0];
  if (!first) return null;
  const code = dtypeCode(first.dtype);
  const n = sizeOf(first.shape);
  if (code === null || tensors.some((t) => dtypeCode(t.dtype) !== code || sizeOf(t.shape) !== n)) return null;
  const out = output(backend, [...first.shape], first.dtype);
  if (n === 0) return out.info;
  const ptrs = tensors.map((t) => backend.ptr(t));
  addon(backend).eltwiseAddN(code, out.ptr, n, ...ptrs.slice(0, MAX_ADDENDS));
  for (let k = MAX_ADDENDS; k < ptrs.length; k += MAX_ADDENDS - 1) {
    addon(backend).eltwiseAddN(code, out.ptr, n, out.ptr, ...ptrs.slice(k, k + MAX_ADDENDS - 1));
  }
  return out.info;
};

const alphaAttr = (attrs: KernelArgs['attrs']): [number, number] => [Number((attrs as { alpha?: number } | undefined)?.alpha ?? 0), 0];

export const ELTWISE_KERNELS: KernelTable = {
  // Unary
  [tf.Abs]: unaryKernel(UNARY.Abs, sameNumeric),
  [tf.Neg]: unaryKernel(UNARY.Neg, sameNumeric),
  [tf.Sqrt]: unaryKernel(UNARY.Sqrt, floatOnly),
  [tf.Rsqrt]: unaryKernel(UNARY.Rsqrt, floatOnly),
  [tf.Square]: unaryKernel(UNARY.Square, sameNumeric),
  [tf.Exp]: unaryKernel(UNARY.Exp, floatOnly),
  [tf.Expm1]: unaryKernel(UNARY.Expm1, floatOnly),
  [tf.Log]: unaryKernel(UNARY.Log, floatOnly),
  [tf.Log1p]: unaryKernel(UNARY.Log1p, floatOnly),
  [tf.Relu]: keepsHalves(unaryKernel(UNARY.Relu, sameNumeric), 'reluHalves'),
  [tf.Relu6]: unaryKernel(UNARY.Relu6, floatOnly),
  [tf.Step]: unaryKernel(UNARY.Step, floatOnly, alphaAttr),
  [tf.Sign]: unaryKernel(UNARY.Sign, sameNumeric),
  [tf.Reciprocal]: unaryKernel(UNARY.Reciprocal, floatOnly),
  [tf.Sigmoid]: unaryKernel(UNARY.Sigmoid, floatOnly),
  [tf.Tanh]: unaryKernel(UNARY.Tanh, floatOnly),
  [tf.Softplus]: unaryKernel(UNARY.Softplus, floatOnly),
  [tf.Elu]: unaryKernel(UNARY.Elu, floatOnly),
  [tf.LeakyRelu]: unaryKernel(UNARY.LeakyRelu, floatOnly, alphaAttr),
  [tf.Floor]: unaryKernel(UNARY.Floor, floatOnly),
  [tf.Ceil]: unaryKernel(UNARY.Ceil, floatOnly),
  [tf.Round]: unaryKernel(UNARY.Round, floatOnly),
  [tf.IsNan]: unaryKernel(UNARY.IsNan, (d) => (d === 'float32' ? 'bool' : null)),
  [tf.IsInf]: unaryKernel(UNARY.IsInf, (d) => (d === 'float32' ? 'bool' : null)),
  [tf.IsFinite]: unaryKernel(UNARY.IsFinite, (d) => (d === 'float32' ? 'bool' : null)),
  [tf.Erf]: unaryKernel(UNARY.Erf, floatOnly),
  [tf.Sin]: unaryKernel(UNARY.Sin, floatOnly),
  [tf.Cos]: unaryKernel(UNARY.Cos, floatOnly),
  [tf.ClipByValue]: unaryKernel(UNARY.ClipByValue, floatOnly, (attrs) => {
    const { clipValueMin, clipValueMax } = attrs as unknown as tf.ClipByValueAttrs;
    return [clipValueMin, clipValueMax];
  }),
  [tf.LogicalNot]: unaryKernel(UNARY.LogicalNot, boolOnly),
  // Binary, broadcasting
  [tf.Add]: binaryKernel(BINARY.Add, sameNumeric),
  [tf.Sub]: binaryKernel(BINARY.Sub, sameNumeric),
  [tf.Multiply]: binaryKernel(BINARY.Multiply, sameNumeric),
  [tf.RealDiv]: binaryKernel(BINARY.RealDiv, sameNumeric),
  [tf.FloorDiv]: binaryKernel(BINARY.FloorDiv, (a, b) => (sameNumeric(a!, b!) ? 'int32' : null)),
  [tf.Maximum]: binaryKernel(BINARY.Maximum, sameNumeric),
  [tf.Minimum]: binaryKernel(BINARY.Minimum, sameNumeric),
  [tf.Pow]: binaryKernel(BINARY.Pow, sameNumeric),
  [tf.SquaredDifference]: binaryKernel(BINARY.SquaredDifference, sameNumeric),
  [tf.Mod]: binaryKernel(BINARY.Mod, sameNumeric),
  [tf.Atan2]: binaryKernel(BINARY.Atan2, floatOnly),
  [tf.Prelu]: binaryKernel(BINARY.Prelu, floatOnly, ['x', 'alpha']),
  [tf.Equal]: binaryKernel(BINARY.Equal, comparable),
  [tf.NotEqual]: binaryKernel(BINARY.NotEqual, comparable),
  [tf.Greater]: binaryKernel(BINARY.Greater, comparable),
  [tf.GreaterEqual]: binaryKernel(BINARY.GreaterEqual, comparable),
  [tf.Less]: binaryKernel(BINARY.Less, comparable),
  [tf.LessEqual]: binaryKernel(BINARY.LessEqual, comparable),
  [tf.LogicalAnd]: binaryKernel(BINARY.LogicalAnd, boolOnly),
  [tf.LogicalOr]: binaryKernel(BINARY.LogicalOr, boolOnly),
  // The rest
  [tf.Select]: select,
  [tf.Cast]: cast,
  [tf.Fill]: fill,
  [tf.ZerosLike]: fillLike(0),
  [tf.OnesLike]: fillLike(1),
  [tf.AddN]: addN,
};
