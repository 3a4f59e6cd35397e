/**
 * An encoder's inference computation as a compact, fused op list that an inference engine can compile
 * (the native oneDNN plan, src/engine/onednn/inference_plan.ts) or run with standard tfjs ops
 * (inference_graph_tfjs.ts). It is recorded from the model itself through `emitFeatures`, so the
 * network's structure is written only once, then rewritten by three passes:
 *
 *  1. BatchNorm right after a conv (running statistics, inference) folds into the conv's kernel and
 *     bias: w' = w * s, b' = beta + (b - mean) * s with s = gamma / sqrt(var + eps).
 *  2. A residual add one of whose operands is a conv output used only there becomes that conv's
 *     accumulation into the other operand (oneDNN's `sum` post-op): the conv writes onto the other
 *     operand's buffer in place, so the other operand must not be read after the conv runs.
 *  3. A ReLU whose input is used only by it moves into the producing conv, norm or add.
 *
 * Values are numbered: 0 is the input images (NCHW as the emitter describes them), the last op's
 * output is the pooled [N, C] features.
 */
import type { BatchNormSpec, ConvSpec, GroupNormSpec, InferenceEmitter } from './emitter.js';
import type { Backbone } from './resnet.js';

export interface ConvOp {
  readonly kind: 'conv';
  input: number;
  output: number;
  /** OIHW kernel, BatchNorm folded in. */
  weight: Float32Array;
  readonly shape: readonly [number, number, number, number];
  readonly stride: number;
  readonly pad: number;
  /** Per output channel (zeros when the conv had none and no BatchNorm folded in). */
  bias: Float32Array;
  /** A value added to the conv's output before the ReLU, accumulated in place on its buffer. */
  sum?: number;
  relu: boolean;
}

export interface BatchNormOp {
  readonly kind: 'batchNorm';
  input: number;
  output: number;
  readonly spec: BatchNormSpec;
  relu: boolean;
}

export interface GroupNormOp {
  readonly kind: 'groupNorm';
  input: number;
  output: number;
  readonly spec: GroupNormSpec;
  relu: boolean;
}

export interface AddOp {
  readonly kind: 'add';
  a: number;
  b: number;
  output: number;
  relu: boolean;
}

export interface ReluOp {
  readonly kind: 'relu';
  input: number;
  output: number;
}

export interface MaxPoolOp {
  readonly kind: 'maxPool';
  input: number;
  output: number;
  readonly kernel: number;
  readonly stride: number;
  readonly pad: number;
  /** Zero padding (a window reaching into it also sees 0) instead of padding that never wins. */
  readonly zeroPad: boolean;
}

export interface GlobalAvgPoolOp {
  readonly kind: 'globalAvgPool';
  input: number;
  output: number;
}

export type InferenceOp = ConvOp | BatchNormOp | GroupNormOp | AddOp | ReluOp | MaxPoolOp | GlobalAvgPoolOp;

export interface InferenceGraph {
  readonly ops: readonly InferenceOp[];
  /** Channels of the pooled features. */
  readonly featureDim: number;
}

export const GRAPH_INPUT = 0;

/** Records the emitted ops unchanged (one value per op output). */
export class GraphRecorder implements InferenceEmitter {
  readonly ops: InferenceOp[] = [];
  private next = GRAPH_INPUT + 1;

  static readonly input = `v${GRAPH_INPUT}`;

  private id(name: string): number {
    const v = Number(name.slice(1));
    if (!name.startsWith('v') || !Number.isInteger(v) || v < 0 || v >= this.next) throw new Error(`inference graph: unknown value '${name}'`);
    return v;
  }

  private push(make: (output: number) => InferenceOp): string {
    const output = this.next++;
    this.ops.push(make(output));
    return `v${output}`;
  }

  conv(x: string, s: ConvSpec): string {
    const bias = s.bias ? s.bias.slice() : new Float32Array(s.shape[0]);
    return this.push((output) => ({ kind: 'conv', input: this.id(x), output, weight: s.weight.slice(), shape: s.shape, stride: s.stride, pad: s.pad, bias, relu: false }));
  }

  batchNorm(x: string, spec: BatchNormSpec): string {
    return this.push((output) => ({ kind: 'batchNorm', input: this.id(x), output, spec, relu: false }));
  }

  groupNorm(x: string, spec: GroupNormSpec): string {
    return this.push((output) => ({ kind: 'groupNorm', input: this.id(x), output, spec, relu: false }));
  }

  relu(x: string): string {
    return this.push((output) => ({ kind: 'relu', input: this.id(x), output }));
  }

  add(a: string, b: string): string {
    return this.push((output) => ({ kind: 'add', a: this.id(a), b: this.id(b), output, relu: false }));
  }

  maxPool(x: string, kernel: number, stride: number, pad: number): string {
    return this.push((output) => ({ kind: 'maxPool', input: this.id(x), output, kernel, stride, pad, zeroPad: false }));
  }

  zeroPaddedMaxPool(x: string, kernel: number, stride: number, pad: number): string {
    return this.push((output) => ({ kind: 'maxPool', input: this.id(x), output, kernel, stride, pad, zeroPad: true }));
  }

  globalAvgPool(x: string): string {
    return this.push((output) => ({ kind: 'globalAvgPool', input: this.id(x), output }));
  }
}

export function opInputs(op: InferenceOp): number[] {
  switch (op.kind) {
    case 'add':
      return [op.a, op.b];
    case 'conv':
      return op.sum === undefined ? [op.input] : [op.input, op.sum];
    default:
      return [op.input];
  }
}

/** How many ops read each value, and which op produces it. */
function useCounts(ops: readonly InferenceOp[]): Map<number, number> {
  const uses = new Map<number, number>();
  for (const op of ops) for (const v of opInputs(op)) uses.set(v, (uses.get(v) ?? 0) + 1);
  return uses;
}

function producers(ops: readonly InferenceOp[]): Map<number, InferenceOp> {
  return new Map(ops.map((op) => [op.output, op]));
}

/** Pass 1: conv -> BatchNorm becomes one conv with the normalisation in its kernel and bias. */
function foldBatchNorms(ops: InferenceOp[]): InferenceOp[] {
  const uses = useCounts(ops);
  const made = producers(ops);
  return ops.filter((op) => {
    if (op.kind !== 'batchNorm') return true;
    const conv = made.get(op.input);
    if (conv?.kind !== 'conv' || uses.get(conv.output) !== 1) return true;
    const { scale, bias, mean, variance, eps } = op.spec;
    const [cout, cin, kh, kw] = conv.shape;
    const perOut = cin * kh * kw;
    const weight = new Float32Array(conv.weight.length);
    const folded = new Float32Array(cout);
    for (let o = 0; o < cout; o++) {
      // In double, so folding adds no error beyond the final rounding to float32.
      const s = scale[o]! / Math.sqrt(variance[o]! + eps);
      for (let k = o * perOut; k < (o + 1) * perOut; k++) weight[k] = conv.weight[k]! * s;
      folded[o] = bias[o]! + (conv.bias[o]! - mean[o]!) * s;
    }
    conv.weight = weight;
    conv.bias = folded;
    conv.output = op.output;
    return false;
  });
}

/** Pass 2: add(conv(x), y) -> conv(x) accumulated onto y, where y is dead once the conv runs. */
function fuseResidualAdds(ops: InferenceOp[]): InferenceOp[] {
  const uses = useCounts(ops);
  const position = new Map(ops.map((op, i) => [op, i]));
  const made = producers(ops);
  /** The last position reading v other than `except`. */
  const lastReadBefore = (v: number, except: InferenceOp): number => {
    let last = -1;
    ops.forEach((op, i) => {
      if (op !== except && opInputs(op).includes(v)) last = i;
    });
    return last;
  };
  return ops.filter((op) => {
    if (op.kind !== 'add') return true;
    const candidates = [
      { conv: made.get(op.a), other: op.b },
      { conv: made.get(op.b), other: op.a },
    ].filter(
      (c): c is { conv: ConvOp; other: number } =>
        c.conv?.kind === 'conv' && uses.get(c.conv.output) === 1 && !c.conv.relu && c.conv.sum === undefined && c.other !== GRAPH_INPUT && c.other !== c.conv.output,
    );
    // The conv that runs last: the other operand is then already computed when it runs.
    const pick = candidates
      .filter((c) => {
        const at = position.get(c.conv)!;
        const otherMade = made.get(c.other);
        return otherMade !== undefined && position.get(otherMade)! < at && lastReadBefore(c.other, op) < at;
      })
      .sort((x, y) => position.get(y.conv)! - position.get(x.conv)!)[0];
    if (!pick) return true;
    pick.conv.sum = pick.other;
    pick.conv.output = op.output;
    return false;
  });
}

/** Pass 3: ReLU into the op producing its input. */
function fuseRelus(ops: InferenceOp[]): InferenceOp[] {
  const uses = useCounts(ops);
  const made = producers(ops);
  return ops.filter((op) => {
    if (op.kind !== 'relu') return true;
    const p = made.get(op.input);
    if (!p || uses.get(p.output) !== 1 || !('relu' in p) || p.relu) return true;
    p.relu = true;
    p.output = op.output;
    return false;
  });
}

/** Renumbers values densely in execution order (0 stays the input). */
function renumber(ops: InferenceOp[]): InferenceOp[] {
  const ids = new Map<number, number>([[GRAPH_INPUT, GRAPH_INPUT]]);
  const id = (v: number): number => {
    const got = ids.get(v);
    if (got === undefined) throw new Error(`inference graph: value ${v} is read before it is computed`);
    return got;
  };
  return ops.map((op) => {
    const out = { ...op } as InferenceOp;
    switch (out.kind) {
      case 'add':
        out.a = id(out.a);
        out.b = id(out.b);
        break;
      case 'conv':
        out.input = id(out.input);
        if (out.sum !== undefined) out.sum = id(out.sum);
        break;
      default:
        out.input = id(out.input);
    }
    ids.set(op.output, ids.size);
    out.output = ids.size - 1;
    return out;
  });
}

/** The recorded op list, folded and fused (see the top of this file). */
export function optimizeGraph(recorded: readonly InferenceOp[]): InferenceOp[] {
  const copy = recorded.map((op) => ({ ...op }) as InferenceOp);
  return renumber(fuseRelus(fuseResidualAdds(foldBatchNorms(copy))));
}

/** The backbone's inference computation, recorded and optimised. */
export function inferenceGraph(backbone: Backbone, opts: { optimize?: boolean } = {}): InferenceGraph {
  const recorder = new GraphRecorder();
  const out = backbone.emitFeatures(recorder, GraphRecorder.input);
  const last = recorder.ops[recorder.ops.length - 1];
  if (last?.kind !== 'globalAvgPool' || `v${last.output}` !== out) throw new Error('inference graph: the backbone does not end in a global average pool');
  const ops = opts.optimize === false ? recorder.ops : optimizeGraph(recorder.ops);
  return { ops, featureDim: backbone.featureDim };
}
