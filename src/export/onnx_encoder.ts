/**
 * A simtrip encoder as an ONNX model: NCHW float32 images [batch, 3, S, S] in (dynamic batch),
 * global-average-pooled features [batch, D] out, in inference mode (BatchNorm on running statistics,
 * BiT's weight standardisation applied to the stored kernels), opset ONNX_OPSET. The input scaling
 * the encoder expects is written into the model's metadata, so another program can reproduce the
 * input (resize, crop, mean/std).
 *
 * The graph comes from the model itself: each layer's `emit` (beside its `apply`) describes it to
 * OnnxEmitter. buildEncoderGraph returns the graph with its features value still open, so a head can
 * be appended before the outputs are declared (a linear probe: feature standardisation, Gemm,
 * Softmax); encoderOnnx encodes it, in memory, for any caller.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { preprocessingRecord, type Preprocessing } from '../data/preprocessing.js';
import { packageRoot } from '../engine/package_root.js';
import type { EncoderModel } from '../model/build.js';
import type { BatchNormSpec, ConvSpec, GroupNormSpec, InferenceEmitter } from '../model/emitter.js';
import { ONNX_OPSET, OnnxGraph, type OnnxDim } from './onnx_graph.js';

/** InferenceEmitter onto ONNX operators (all in the default domain at ONNX_OPSET). */
export class OnnxEmitter implements InferenceEmitter {
  constructor(readonly graph: OnnxGraph) {}

  conv(x: string, s: ConvSpec): string {
    const g = this.graph;
    const inputs = [x, g.initializer(`${s.name}.weight`, s.shape, s.weight)];
    if (s.bias) inputs.push(g.initializer(`${s.name}.bias`, [s.shape[0]], s.bias));
    return g.node('Conv', s.name, inputs, {
      kernel_shape: { ints: [s.shape[2], s.shape[3]] },
      strides: { ints: [s.stride, s.stride] },
      pads: { ints: [s.pad, s.pad, s.pad, s.pad] },
    });
  }

  batchNorm(x: string, s: BatchNormSpec): string {
    const g = this.graph;
    const c = [s.scale.length];
    const inputs = [
      x,
      g.initializer(`${s.name}.weight`, c, s.scale),
      g.initializer(`${s.name}.bias`, c, s.bias),
      g.initializer(`${s.name}.running_mean`, c, s.mean),
      g.initializer(`${s.name}.running_var`, c, s.variance),
    ];
    return g.node('BatchNormalization', s.name, inputs, { epsilon: { float: s.eps } });
  }

  /**
   * GroupNorm as InstanceNormalization over [N, G, C/G*H*W] (per-sample, per-group mean and biased
   * variance), reshaped back, then the per-channel affine: standard operators every runtime has
   * (ONNX's own GroupNormalization changed meaning between opsets 18 and 21).
   */
  groupNorm(x: string, s: GroupNormSpec): string {
    const g = this.graph;
    const channels = s.scale.length;
    const shape = g.node('Shape', `${s.name}.shape`, [x]);
    const grouped = g.node('Reshape', `${s.name}.grouped`, [x, g.ints(`${s.name}.groups`, [0, s.groups, -1])]);
    const unit = g.initializer(`${s.name}.unit_scale`, [s.groups], new Float32Array(s.groups).fill(1));
    const zero = g.initializer(`${s.name}.unit_bias`, [s.groups], new Float32Array(s.groups));
    const normed = g.node('InstanceNormalization', `${s.name}.normalize`, [grouped, unit, zero], { epsilon: { float: s.eps } });
    const back = g.node('Reshape', `${s.name}.ungrouped`, [normed, shape]);
    const scaled = g.node('Mul', `${s.name}.scale`, [back, g.initializer(`${s.name}.weight`, [channels, 1, 1], s.scale)]);
    return g.node('Add', s.name, [scaled, g.initializer(`${s.name}.bias`, [channels, 1, 1], s.bias)]);
  }

  relu(x: string): string {
    return this.graph.node('Relu', 'relu', [x]);
  }

  add(a: string, b: string): string {
    return this.graph.node('Add', 'add', [a, b]);
  }

  maxPool(x: string, kernel: number, stride: number, pad: number): string {
    return this.graph.node('MaxPool', 'maxpool', [x], {
      kernel_shape: { ints: [kernel, kernel] },
      strides: { ints: [stride, stride] },
      pads: { ints: [pad, pad, pad, pad] },
    });
  }

  /**
   * Not Pad -> MaxPool: onnxruntime (its L1 PadFusion, since 1.17) and onnx-simplifier fold a zero Pad
   * into MaxPool's pads, which MaxPool fills with -inf, so a window of negative values at the border
   * would lose the 0 (measured: 0.2-0.7 % relative error in BiT features with onnxruntime 1.31).
   * Instead: MaxPool with its -inf pads, and 0 added back as a candidate exactly in the windows that
   * reach into the padding (where an AveragePool of ones counting the pads falls below 1). Exact, and
   * nothing for an optimizer to fold.
   */
  zeroPaddedMaxPool(x: string, kernel: number, stride: number, pad: number): string {
    const g = this.graph;
    const window = { kernel_shape: { ints: [kernel, kernel] }, strides: { ints: [stride, stride] }, pads: { ints: [pad, pad, pad, pad] } };
    const pooled = g.node('MaxPool', 'maxpool', [x], window);
    const one = g.initializer('one', [1], new Float32Array([1]));
    const ones = g.node('Expand', 'ones', [one, g.node('Shape', 'shape', [x])]);
    const coverage = g.node('AveragePool', 'window_coverage', [ones], { ...window, count_include_pad: { int: 1 } });
    const border = g.node('Less', 'border_window', [coverage, one]);
    const withZero = g.node('Max', 'maxpool_with_zero', [pooled, g.initializer('zero', [1], new Float32Array([0]))]);
    return g.node('Where', 'zero_padded_maxpool', [border, withZero, pooled]);
  }

  globalAvgPool(x: string): string {
    const pooled = this.graph.node('GlobalAveragePool', 'avgpool', [x]);
    return this.graph.node('Flatten', 'flatten', [pooled], { axis: { int: 1 } });
  }
}

/** The preprocessing as metadata entries: one JSON record, and the same facts as plain keys. */
export function preprocessingMetadata(p: Preprocessing): Record<string, string> {
  const record = preprocessingRecord(p);
  const { mean, std } = record;
  return {
    preprocessing: JSON.stringify(record),
    image_size: String(p.imageSize),
    resize: `shorter side to ${p.imageSize} px (lanczos3), then centre crop ${p.imageSize}x${p.imageSize}`,
    channel_order: 'RGB',
    layout: 'NCHW',
    pixel_scale: '1/255',
    mean: mean.join(','),
    std: std.join(','),
    normalization: p.normalization,
  };
}

export interface EncoderGraph {
  readonly graph: OnnxGraph;
  readonly input: string;
  /** The pooled features [batch, featureDim], not yet declared an output. */
  readonly features: string;
  readonly featureDim: number;
}

export const ONNX_INPUT = 'images';
export const ONNX_FEATURES = 'features';
const BATCH = 'batch';

/**
 * The input's layout: NCHW for export (what other programs expect), NHWC for simtrip's own ONNX Runtime
 * extractor, whose images come NHWC from preprocessEval: one Transpose node at the input then does in
 * the runtime what a JS loop would otherwise do per batch.
 */
export type OnnxInputLayout = 'NCHW' | 'NHWC';

/** The encoder's graph with its features value open (see the top of this file). */
export function buildEncoderGraph(model: EncoderModel, imageSize: number, layout: OnnxInputLayout = 'NCHW'): EncoderGraph {
  const graph = new OnnxGraph('simtrip_encoder');
  const nchw = layout === 'NCHW';
  const input = graph.input(ONNX_INPUT, nchw ? [BATCH, 3, imageSize, imageSize] : [BATCH, imageSize, imageSize, 3]);
  const channelsFirst = nchw ? input : graph.node('Transpose', 'nhwc_to_nchw', [input], { perm: { ints: [0, 3, 1, 2] } });
  const pooled = model.backbone.emitFeatures(new OnnxEmitter(graph), channelsFirst);
  const features = graph.node('Identity', ONNX_FEATURES, [pooled]);
  return { graph, input, features, featureDim: model.backbone.featureDim };
}

/** A head appended to the encoder's features (the extension point for `--with-probe`). */
export type OnnxHead = (graph: OnnxGraph, features: string) => {
  readonly output: string;
  readonly dims: readonly OnnxDim[];
  readonly metadata?: Readonly<Record<string, string>>;
};

export interface EncoderOnnxOptions extends Preprocessing {
  /** More metadata (the source checkpoint, the model settings, ...). */
  readonly metadata?: Readonly<Record<string, string>>;
  /** Appended after the features; the model then outputs the head's value instead. */
  readonly head?: OnnxHead;
  /** The input's layout; NCHW (the default) for files other programs read. */
  readonly layout?: OnnxInputLayout;
}

function simtripVersion(): string {
  try {
    return (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/** The encoder (or encoder + head) as ONNX model bytes, built in memory. */
export function encoderOnnx(model: EncoderModel, opts: EncoderOnnxOptions): Uint8Array {
  const layout = opts.layout ?? 'NCHW';
  const { graph, features, featureDim } = buildEncoderGraph(model, opts.imageSize, layout);
  const head = opts.head?.(graph, features);
  if (head) graph.output(head.output, head.dims);
  else graph.output(features, [BATCH, featureDim]);
  const what = head ? `encoder with a head (output '${head.output}')` : `pooled features [${BATCH}, ${featureDim}] ('${ONNX_FEATURES}')`;
  return graph.encode({
    producerVersion: simtripVersion(),
    docString: `simtrip encoder: '${ONNX_INPUT}' [${layout === 'NCHW' ? `${BATCH}, 3, ${opts.imageSize}, ${opts.imageSize}` : `${BATCH}, ${opts.imageSize}, ${opts.imageSize}, 3`}] (${layout}, RGB, normalised as the 'preprocessing' metadata says) -> ${what}; ONNX opset ${ONNX_OPSET}.`,
    metadata: {
      ...preprocessingMetadata(opts),
      layout,
      opset: String(ONNX_OPSET),
      input: ONNX_INPUT,
      output: head ? head.output : ONNX_FEATURES,
      feature_dim: String(featureDim),
      ...opts.metadata,
      ...head?.metadata,
    },
  });
}
