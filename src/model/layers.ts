/**
 * The layers simtrip's models are drawn with. Each owns its parameters in a ParamStore under a
 * PyTorch-style name and applies them in tfjs' NHWC layout.
 */
import { tf } from '../engine/tf.js';
import { Rng } from '../util/rng.js';
import { ParamStore } from './params.js';
import { kaimingNormalConv, linearUniform } from './init.js';
import { batchNormTrain } from '../ops/batch_norm.js';

export interface Context {
  store: ParamStore;
  rng: Rng;
  /** Optimiser group for the parameters created with this context. */
  group?: string;
}

/** Conv2d with PyTorch's symmetric zero padding (tfjs 'same' pads asymmetrically at stride 2). */
export class Conv2d {
  readonly weight: tf.Variable;
  readonly bias?: tf.Variable;
  private readonly pad: [[number, number], [number, number], [number, number], [number, number]];

  constructor(
    ctx: Context,
    readonly name: string,
    cin: number,
    cout: number,
    readonly kernel: number,
    readonly stride = 1,
    padding = 0,
    withBias = false,
  ) {
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

  apply(x: tf.Tensor4D, weight: tf.Tensor4D = this.weight as tf.Tensor4D): tf.Tensor4D {
    const y = tf.conv2d(x, weight, this.stride, this.pad);
    return this.bias ? (tf.add(y, this.bias) as tf.Tensor4D) : y;
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

  constructor(
    ctx: Context,
    readonly name: string,
    readonly channels: number,
    opts: BatchNormOptions = {},
  ) {
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
    if (!training) {
      return tf.batchNorm(x, this.runningMean, this.runningVar, this.offset, this.scale, this.eps) as T;
    }
    const { y, mean, variance } = batchNormTrain(x, this.scale, this.offset, this.eps);
    this.updateRunningStats(mean, variance, x.size / this.channels);
    tf.dispose([mean, variance]);
    return y;
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

  constructor(ctx: Context, readonly name: string, cin: number, cout: number, withBias = true) {
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
    const y = tf.matMul(x, this.weight) as tf.Tensor2D;
    return this.bias ? (tf.add(y, this.bias) as tf.Tensor2D) : y;
  }
}

/** Global average pool NHWC -> [N, C]. */
export function globalAvgPool(x: tf.Tensor4D): tf.Tensor2D {
  return tf.mean(x, [1, 2]) as tf.Tensor2D;
}
