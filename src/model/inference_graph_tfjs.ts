/**
 * The optimised inference graph (inference_graph.ts) run with standard tfjs ops in NHWC: the fallback
 * of the native oneDNN plan where the addon lacks it, and the reference it is tested against (same
 * folded kernels, same fusions, composed from conv2d, add, relu, pools and the composed GroupNorm).
 */
import { tf } from '../engine/tf.js';
import { composedGroupNorm } from '../ops/group_norm.js';
import type { FeatureExtractor } from '../eval/extractor.js';
import { GRAPH_INPUT, inferenceGraph, type ConvOp, type InferenceGraph, type InferenceOp } from './inference_graph.js';
import type { Backbone } from './resnet.js';

/** A conv's kernel and bias as tfjs tensors, made once. */
interface ConvTensors {
  filter: tf.Tensor4D;
  bias: tf.Tensor1D;
}

function convTensors(op: ConvOp): ConvTensors {
  const [o, i, h, w] = op.shape;
  return tf.tidy(() => ({
    filter: tf.transpose(tf.tensor4d(op.weight, [o, i, h, w]), [2, 3, 1, 0]) as tf.Tensor4D,
    bias: tf.tensor1d(op.bias),
  }));
}

function maybeRelu<T extends tf.Tensor>(x: T, relu: boolean): T {
  return relu ? tf.relu(x) : x;
}

export class TfjsInferenceGraph {
  private readonly convs = new Map<ConvOp, ConvTensors>();

  constructor(readonly graph: InferenceGraph) {
    for (const op of graph.ops) if (op.kind === 'conv') this.convs.set(op, convTensors(op));
  }

  private apply(op: InferenceOp, v: (id: number) => tf.Tensor4D): tf.Tensor {
    switch (op.kind) {
      case 'conv': {
        const { filter, bias } = this.convs.get(op)!;
        const pad = op.pad;
        let y: tf.Tensor4D = tf.add(tf.conv2d(v(op.input), filter, op.stride, [[0, 0], [pad, pad], [pad, pad], [0, 0]]), bias);
        if (op.sum !== undefined) y = tf.add(y, v(op.sum));
        return maybeRelu(y, op.relu);
      }
      case 'batchNorm': {
        const s = op.spec;
        return maybeRelu(tf.batchNorm(v(op.input), s.mean, s.variance, s.bias, s.scale, s.eps), op.relu);
      }
      case 'groupNorm': {
        const s = op.spec;
        return maybeRelu(composedGroupNorm(v(op.input), tf.tensor1d(s.scale), tf.tensor1d(s.bias), s.groups, s.eps), op.relu);
      }
      case 'add':
        return maybeRelu(tf.add(v(op.a), v(op.b)), op.relu);
      case 'relu':
        return tf.relu(v(op.input));
      case 'maxPool': {
        const x = v(op.input);
        const p = op.pad;
        // Numeric padding in tfjs' max-pool never wins (as PyTorch's -inf); zero padding is explicit.
        return op.zeroPad ? tf.maxPool(tf.pad(x, [[0, 0], [p, p], [p, p], [0, 0]]), op.kernel, op.stride, 'valid') : tf.maxPool(x, op.kernel, op.stride, p);
      }
      case 'globalAvgPool':
        return tf.mean(v(op.input), [1, 2]);
    }
  }

  /** Pooled features [N, featureDim] of NHWC images. */
  features(images: tf.Tensor4D): tf.Tensor2D {
    return tf.tidy(() => {
      const values = new Map<number, tf.Tensor>([[GRAPH_INPUT, images]]);
      const v = (id: number) => values.get(id) as tf.Tensor4D;
      for (const op of this.graph.ops) values.set(op.output, this.apply(op, v));
      return values.get(this.graph.ops[this.graph.ops.length - 1]!.output) as tf.Tensor2D;
    });
  }

  dispose(): void {
    for (const t of this.convs.values()) tf.dispose([t.filter, t.bias]);
    this.convs.clear();
  }
}

/**
 * The optimised graph on the active tfjs backend as a FeatureExtractor: the fallback of the
 * onednn-plan runtime where the native addon lacks the plan.
 */
export function createTfjsGraphExtractor(backbone: Backbone, imageSize: number): FeatureExtractor {
  const graph = inferenceGraph(backbone);
  let runner: TfjsInferenceGraph | null = new TfjsInferenceGraph(graph);
  return {
    runtime: 'tfjs',
    description: `tfjs (${tf.getBackend()}) inference graph: BatchNorm folded into the convs, standard ops`,
    featureDim: graph.featureDim,
    imageSize,
    async run(images: Float32Array, n: number): Promise<Float32Array> {
      if (!runner) throw new Error('tfjs inference graph: the extractor was disposed');
      if (images.length !== n * imageSize * imageSize * 3) throw new Error(`tfjs inference graph: expected ${n} images of ${imageSize}x${imageSize}x3, got ${images.length} floats`);
      if (n === 0) return new Float32Array(0);
      const r = runner;
      const out = tf.tidy(() => r.features(tf.tensor4d(images, [n, imageSize, imageSize, 3])));
      const values = (await out.data()) as Float32Array;
      out.dispose();
      return values;
    },
    dispose(): void {
      runner?.dispose();
      runner = null;
    },
  };
}
