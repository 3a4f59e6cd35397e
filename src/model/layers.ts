/**
 * The layers simtrip's models are drawn with. Each owns its parameters in a ParamStore under a
 * PyTorch-style name and applies them in tfjs' NHWC layout.
 *
 * Precision policy (engine.precision, Context.precision): under 'mixed16' the layers reproduce the
 * numerics of torch.autocast(dtype=float16) on float32 tensors by rounding to the half grid
 * (src/ops/fp16_round.ts) where autocast holds half tensors:
 *  - Conv2d and Linear are on autocast's float16 list (conv*, linear, matmul, addmm): their input,
 *    weight and bias are cast to half and their output is half. Here: input, weight and bias rounded,
 *    the product accumulated in float32 (as cuDNN/cuBLAS accumulate fp16 products in fp32), the
 *    output rounded once.
 *  - BatchNorm is on no list, so it runs in its input's dtype: half in, half out, statistics and
 *    running buffers in float32 (cuDNN's fp16 batch norm). Here: output rounded.
 *  - GroupNorm, layer_norm, cosine_similarity, softmax, the losses (autocast's float32 list) and
 *    everything this file does not define stay float32.
 * The parameters themselves stay float32 variables (the fp32 master copy the optimiser updates); the
 * rounding happens on every application, and its straight-through gradient leaves each weight's
 * gradient on the half grid, as the fp16 kernels of autocast's backward produce it.
 */
import { tf } from '../engine/tf.js';
import { Rng } from '../util/rng.js';
import { ParamStore } from './params.js';
import { kaimingNormalConv, linearUniform } from './init.js';
import { batchNormReluFuses, batchNormReluTrain, batchNormTrain } from '../ops/batch_norm.js';
import { roundToHalf } from '../ops/fp16_round.js';
import { torchValues, type InferenceEmitter } from './emitter.js';

/** engine.precision: 'mixed16' emulates float16 autocast (see the top of this file). */
export type Precision = 'fp32' | 'mixed16';

export interface Context {
  store: ParamStore;
  rng: Rng;
  /** Optimiser group for the parameters created with this context. */
  group?: string;
  /** Numerics of the layers created with this context; fp32 when left out. */
  precision?: Precision;
}

/**
 * A residual sum: under mixed16 the add of two fp16 tensors is an fp16 tensor, so the sum is rounded,
 * and the float32 sum is freed at once (on the CUDA engine only the half-stored result then stays for
 * the backward pass).
 */
export function residualSum<T extends tf.Tensor>(precision: Precision | undefined, a: T, b: T): T {
  if (precision !== 'mixed16') return tf.add(a, b) as T;
  return tf.tidy(() => roundToHalf(tf.add(a, b) as T));
}

/** Conv2d with PyTorch's symmetric zero padding (tfjs 'same' pads asymmetrically at stride 2). */
export class Conv2d {
  readonly weight: tf.Variable;
  readonly bias?: tf.Variable;
  readonly precision: Precision;
  private readonly pad: [[number, number], [number, number], [number, number], [number, number]];

  constructor(
    ctx: Context,
    readonly name: string,
    cin: number,
    cout: number,
    readonly kernel: number,
    readonly stride = 1,
    readonly padding = 0,
    withBias = false,
  ) {
    this.precision = ctx.precision ?? 'fp32';
    this.weight = ctx.store.add(`${name}.weight`, kaimingNormalConv([kernel, kernel, cin, cout], ctx.rng), {
      layout: 'conv',
      group: ctx.group,
    });
    if (withBias) {
      this.bias = ctx.store.add(`${name}.bias`, tf.zeros([cout]), { layout: 'vector', normOrBias: true, group: ctx.group });
    }
    this.pad = [
      [0, 0],
      [padding, padding],
      [padding, padding],
      [0, 0],
    ];
  }

  /**
   * `weight` replaces the layer's own kernel for this call (a weight-standardised kernel, BiT's
   * StdConv2d); under mixed16 it is rounded like the layer's own.
   */
  apply(x: tf.Tensor4D, weight: tf.Tensor4D = this.weight as tf.Tensor4D): tf.Tensor4D {
    if (this.precision === 'fp32') return this.convolve(x, weight, this.bias);
    return tf.tidy(() => {
      const y = this.convolve(roundToHalf(x), roundToHalf(weight), this.bias && roundToHalf(this.bias));
      return roundToHalf(y);
    });
  }

  private convolve(x: tf.Tensor4D, weight: tf.Tensor4D, bias: tf.Tensor | undefined): tf.Tensor4D {
    const y = tf.conv2d(x, weight, this.stride, this.pad);
    return bias ? (tf.add(y, bias) as tf.Tensor4D) : y;
  }

  /** `apply` (float32) as an inference-graph op; `weight` as in apply. */
  emit(g: InferenceEmitter, x: string, weight: tf.Tensor4D = this.weight as tf.Tensor4D): string {
    const [kh, kw, cin, cout] = weight.shape;
    return g.conv(x, {
      name: this.name,
      weight: torchValues(weight, [3, 2, 0, 1]),
      shape: [cout, cin, kh, kw],
      stride: this.stride,
      pad: this.padding,
      bias: this.bias && torchValues(this.bias, null),
    });
  }
}

export interface BatchNormOptions {
  affine?: boolean;
  eps?: number;
  /** PyTorch convention: running = (1 - momentum) * running + momentum * batch. */
  momentum?: number;
  /** Initial gamma (0 for zero-init residual branches). */
  gammaInit?: number;
}

/**
 * BatchNorm over every axis but the last (works for NHWC and [N, C]). Training mode normalises with
 * the biased batch variance and updates the running statistics with the unbiased one, as PyTorch does.
 */
export class BatchNorm {
  readonly gamma?: tf.Variable;
  readonly beta?: tf.Variable;
  // tfjs' batchNorm records undefined scale/offset as tape inputs, which breaks its gradient
  // bookkeeping; a BN without affine parameters uses constant ones and zeros instead.
  private readonly scale: tf.Tensor;
  private readonly offset: tf.Tensor;
  readonly runningMean: tf.Variable;
  readonly runningVar: tf.Variable;
  private readonly eps: number;
  private readonly momentum: number;
  readonly precision: Precision;

  constructor(
    ctx: Context,
    readonly name: string,
    readonly channels: number,
    opts: BatchNormOptions = {},
  ) {
    this.precision = ctx.precision ?? 'fp32';
    this.eps = opts.eps ?? 1e-5;
    this.momentum = opts.momentum ?? 0.1;
    if (opts.affine ?? true) {
      const g = { layout: 'vector' as const, normOrBias: true, group: ctx.group };
      this.gamma = ctx.store.add(`${name}.weight`, tf.fill([channels], opts.gammaInit ?? 1), g);
      this.beta = ctx.store.add(`${name}.bias`, tf.zeros([channels]), g);
    }
    this.scale = this.gamma ?? tf.keep(tf.ones([channels]));
    this.offset = this.beta ?? tf.keep(tf.zeros([channels]));
    const buf = { layout: 'vector' as const, trainable: false };
    this.runningMean = ctx.store.add(`${name}.running_mean`, tf.zeros([channels]), buf);
    this.runningVar = ctx.store.add(`${name}.running_var`, tf.ones([channels]), buf);
  }

  apply<T extends tf.Tensor>(x: T, training: boolean): T {
    if (this.precision === 'fp32') return this.normalize(x, training, false);
    return tf.tidy(() => roundToHalf(this.normalize(x, training, false)));
  }

  /**
   * relu(apply(x)). In training one fused kernel where the engine has it (batchNormReluTrain on
   * onednn); under mixed16 the rounding then comes after the ReLU, which gives the same values
   * (rounding keeps signs and zeros) and, backward, the same half-rounded gradient. Elsewhere the
   * ReLU stays after the rounding: an engine with real half storage (cuda) then keeps the tensor the
   * ReLU saves for its gradient in half, not float32.
   */
  applyRelu<T extends tf.Tensor>(x: T, training: boolean): T {
    if (training && batchNormReluFuses(x, this.scale, this.offset)) {
      if (this.precision === 'fp32') return this.normalize(x, true, true);
      return tf.tidy(() => roundToHalf(this.normalize(x, true, true)));
    }
    return tf.tidy(() => tf.relu(this.apply(x, training)) as T);
  }

  private normalize<T extends tf.Tensor>(x: T, training: boolean, relu: boolean): T {
    if (!training) {
      return tf.batchNorm(x, this.runningMean, this.runningVar, this.offset, this.scale, this.eps) as T;
    }
    const { y, mean, variance } = (relu ? batchNormReluTrain : batchNormTrain)(x, this.scale, this.offset, this.eps);
    this.updateRunningStats(mean, variance, x.size / this.channels);
    tf.dispose([mean, variance]);
    return y;
  }

  /** Inference-mode `apply` (running statistics) as an inference-graph op. */
  emit(g: InferenceEmitter, x: string): string {
    return g.batchNorm(x, {
      name: this.name,
      scale: torchValues(this.scale, null),
      bias: torchValues(this.offset, null),
      mean: torchValues(this.runningMean, null),
      variance: torchValues(this.runningVar, null),
      eps: this.eps,
    });
  }

  private updateRunningStats(mean: tf.Tensor, variance: tf.Tensor, count: number): void {
    // Statistics are data, not part of the differentiated graph.
    tf.tidy(() => {
      const m = this.momentum;
      const unbiased = tf.mul(variance, count / Math.max(count - 1, 1));
      this.runningMean.assign(tf.add(tf.mul(this.runningMean, 1 - m), tf.mul(mean, m)));
      this.runningVar.assign(tf.add(tf.mul(this.runningVar, 1 - m), tf.mul(unbiased, m)));
    });
  }
}

export class Linear {
  readonly weight: tf.Variable;
  readonly bias?: tf.Variable;
  readonly precision: Precision;

  constructor(ctx: Context, readonly name: string, cin: number, cout: number, withBias = true) {
    this.precision = ctx.precision ?? 'fp32';
    this.weight = ctx.store.add(`${name}.weight`, linearUniform([cin, cout], cin, ctx.rng), { layout: 'linear', group: ctx.group });
    if (withBias) {
      this.bias = ctx.store.add(`${name}.bias`, linearUniform([cout], cin, ctx.rng), {
        layout: 'vector',
        normOrBias: true,
        group: ctx.group,
      });
    }
  }

  apply(x: tf.Tensor2D): tf.Tensor2D {
    if (this.precision === 'fp32') return Linear.affine(x, this.weight, this.bias);
    return tf.tidy(() => roundToHalf(Linear.affine(roundToHalf(x), roundToHalf(this.weight), this.bias && roundToHalf(this.bias))));
  }

  private static affine(x: tf.Tensor2D, weight: tf.Tensor, bias: tf.Tensor | undefined): tf.Tensor2D {
    const y = tf.matMul(x, weight) as tf.Tensor2D;
    return bias ? (tf.add(y, bias) as tf.Tensor2D) : y;
  }
}

/** Global average pool NHWC -> [N, C]. */
export function globalAvgPool(x: tf.Tensor4D): tf.Tensor2D {
  return tf.mean(x, [1, 2]) as tf.Tensor2D;
}
