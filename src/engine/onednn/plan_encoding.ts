/**
 * The optimised inference graph (src/model/inference_graph.ts) as the arguments of the native
 * planCreate (native/onednn/plan.cc): OP_INTS ints per op, one epsilon per op and each op's parameter
 * arrays. The field order is shared with plan.cc's `Field` and `Kind` enums.
 */
import type { InferenceGraph, InferenceOp } from '../../model/inference_graph.js';

export const OP_INTS = 12;
const KIND = { conv: 0, batchNorm: 1, groupNorm: 2, add: 3, relu: 4, maxPool: 5, globalAvgPool: 6 } as const;
const NONE = -1;

export interface EncodedPlan {
  ops: Int32Array;
  eps: Float32Array;
  params: Float32Array[][];
}

/** [kind, input, output, aux, relu, p0..p6] and the parameter arrays of one op. */
function encodeOp(op: InferenceOp): { ints: number[]; eps: number; params: Float32Array[] } {
  switch (op.kind) {
    case 'conv': {
      const [o, i, h, w] = op.shape;
      return { ints: [op.input, op.output, op.sum ?? NONE, +op.relu, o, i, h, w, op.stride, op.pad], eps: 0, params: [op.weight, op.bias] };
    }
    case 'batchNorm': {
      const s = op.spec;
      return { ints: [op.input, op.output, NONE, +op.relu, s.scale.length], eps: s.eps, params: [s.scale, s.bias, s.mean, s.variance] };
    }
    case 'groupNorm': {
      const s = op.spec;
      return { ints: [op.input, op.output, NONE, +op.relu, s.scale.length, s.groups], eps: s.eps, params: [s.scale, s.bias] };
    }
    case 'add':
      return { ints: [op.a, op.output, op.b, +op.relu], eps: 0, params: [] };
    case 'relu':
    case 'globalAvgPool':
      return { ints: [op.input, op.output, NONE, 0], eps: 0, params: [] };
    case 'maxPool':
      return { ints: [op.input, op.output, NONE, 0, op.kernel, op.stride, op.pad, +op.zeroPad], eps: 0, params: [] };
  }
}

export function encodePlan(graph: InferenceGraph): EncodedPlan {
  const ops = new Int32Array(graph.ops.length * OP_INTS);
  const eps = new Float32Array(graph.ops.length);
  const params: Float32Array[][] = [];
  graph.ops.forEach((op, k) => {
    const e = encodeOp(op);
    ops.set([KIND[op.kind], ...e.ints], k * OP_INTS);
    eps[k] = e.eps;
    params.push(e.params);
  });
  return { ops, eps, params };
}
