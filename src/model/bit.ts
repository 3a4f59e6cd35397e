/**
 * BiT ResNet-v2 (Big Transfer): pre-activation bottleneck units with weight-standardised convs and
 * GroupNorm, named like timm's resnetv2_*_bit so timm state dicts load by name; BiT .npz files load
 * through bit_weights.ts.
 *
 *   stem.conv (7x7/2, pad 3) -> zero pad 1 -> 3x3/2 max-pool (no padding)    [stem 'bit']
 *   stem.conv (3x3/2, pad 1)                                                  [stem 'cifar']
 *   -> stages.0..3 (pre-activation bottlenecks) -> norm -> relu -> global avg pool [-> head.fc]
 *
 * Unit: pre = relu(norm1(x)); shortcut = downsample.conv(pre) when the unit projects, else x;
 *       y = conv1(pre); y = conv2(relu(norm2(y))); y = conv3(relu(norm3(y))); out = y + shortcut.
 *
 * `norm: 'batch'` is BiT-SimSiam's variant: the same network with BatchNorm in every norm's place
 * (same names, plus running_mean/running_var), weight standardisation kept, and norm3 of every unit
 * starting at gamma 0 so that each unit starts as the identity (its branch outputs conv3(0) = 0).
 */
import { tf } from '../engine/tf.js';
import { groupNorm } from '../ops/group_norm.js';
import { standardizeWeight } from '../ops/weight_standardization.js';
import { BatchNorm, Context, Conv2d, Linear, globalAvgPool, residualSum, type Precision } from './layers.js';
import type { Backbone } from './resnet.js';
import { torchValues, type InferenceEmitter } from './emitter.js';
import { gcd } from '../util/values.js';

export type BitNorm = 'group' | 'batch';

export interface BitSpec {
  /** Units per stage, e.g. [3,4,6,3] for R50. */
  depths: number[];
  /** Multiplies every channel count (R50x1: 1, R50x3: 3). */
  widthFactor: number;
  /** 'bit': 7x7/2 conv + zero pad + 3x3/2 max-pool; 'cifar': 3x3 stride-2 conv, no max-pool. */
  stem: 'bit' | 'cifar';
  /** Root width before the width factor: 64 in BiT (default); smaller for tests. */
  width?: number;
  /** 'group' (default): GroupNorm as released; 'batch': BatchNorm in its place. */
  norm?: BitNorm;
  /** BatchNorm variant only: norm3 of every unit starts at gamma 0 (default true). */
  zeroInitLastNorm?: boolean;
  /** Adds the classifier `head.fc` when set. */
  numClasses?: number;
}

export const BIT_DEPTHS = {
  r50: [3, 4, 6, 3],
  r101: [3, 4, 23, 3],
  r152: [3, 8, 36, 3],
} as const satisfies Record<string, readonly number[]>;

export const BIT_WIDTH = 64;
export const BIT_GN_GROUPS = 32;
export const BIT_GN_EPS = 1e-5;
export const BIT_WS_EPS = 1e-10;


/**
 * GroupNorm groups for a channel count: gcd(32, channels). At BiT's widths every channel count is a
 * multiple of 64, so this is BiT's 32; narrower test models (width 4, 8, ...) get as many groups as
 * divide their channels (min(32, channels) for powers of two).
 */
export function groupsFor(channels: number): number {
  return gcd(BIT_GN_GROUPS, channels);
}

/** A norm layer of the unit: GroupNorm ignores `training`, BatchNorm switches batch/running stats. */
interface Norm {
  apply(x: tf.Tensor4D, training: boolean): tf.Tensor4D;
  /** relu(apply(x)): one fused kernel for BatchNorm in training where the engine has it. */
  applyRelu(x: tf.Tensor4D, training: boolean): tf.Tensor4D;
  emit(g: InferenceEmitter, x: string): string;
}

/** GroupNorm with affine weight/bias (timm names `<name>.weight`, `<name>.bias`). */
export class GroupNorm implements Norm {
  readonly gamma: tf.Variable;
  readonly beta: tf.Variable;

  constructor(
    ctx: Context,
    readonly name: string,
    readonly channels: number,
    readonly groups = groupsFor(channels),
    readonly eps = BIT_GN_EPS,
  ) {
    if (channels % groups !== 0) throw new Error(`${name}: ${channels} channels do not split into ${groups} groups`);
    const g = { layout: 'vector' as const, normOrBias: true, group: ctx.group };
    this.gamma = ctx.store.add(`${name}.weight`, tf.ones([channels]), g);
    this.beta = ctx.store.add(`${name}.bias`, tf.zeros([channels]), g);
  }

  apply(x: tf.Tensor4D, _training = false): tf.Tensor4D {
    return groupNorm(x, this.gamma, this.beta, this.groups, this.eps);
  }

  applyRelu(x: tf.Tensor4D, _training = false): tf.Tensor4D {
    return tf.tidy(() => tf.relu(this.apply(x)));
  }

  emit(g: InferenceEmitter, x: string): string {
    return g.groupNorm(x, { name: this.name, groups: this.groups, scale: torchValues(this.gamma, null), bias: torchValues(this.beta, null), eps: this.eps });
  }
}

function makeNorm(ctx: Context, kind: BitNorm, name: string, channels: number, gammaInit = 1): Norm {
  return kind === 'batch' ? new BatchNorm(ctx, name, channels, { gammaInit }) : new GroupNorm(ctx, name, channels);
}

/** A Conv2d whose kernel is weight-standardised on every application. */
export class StdConv2d extends Conv2d {
  override apply(x: tf.Tensor4D): tf.Tensor4D {
    const w = standardizeWeight(this.weight as tf.Tensor4D, BIT_WS_EPS);
    const y = super.apply(x, w);
    w.dispose();
    return y;
  }

  /** The standardised kernel is a constant at inference: it goes into the graph as such. */
  override emit(g: InferenceEmitter, x: string): string {
    const w = standardizeWeight(this.weight as tf.Tensor4D, BIT_WS_EPS);
    try {
      return super.emit(g, x, w);
    } finally {
      w.dispose();
    }
  }
}

interface UnitOptions {
  norm: BitNorm;
  zeroInitLastNorm: boolean;
}

class PreActBottleneck {
  private readonly norm1: Norm;
  private readonly conv1: StdConv2d;
  private readonly norm2: Norm;
  private readonly conv2: StdConv2d;
  private readonly norm3: Norm;
  private readonly conv3: StdConv2d;
  private readonly downsample?: StdConv2d;
  /** The residual sum is an fp16 tensor under autocast (add of two halves). */
  private readonly precision?: Precision;

  constructor(ctx: Context, name: string, cin: number, cout: number, stride: number, opts: UnitOptions) {
    this.precision = ctx.precision;
    const cmid = cout / 4;
    // Zero gamma only makes sense where the norm is trained from scratch: BiT's GroupNorms come from the file.
    const lastGamma = opts.norm === 'batch' && opts.zeroInitLastNorm ? 0 : 1;
    this.norm1 = makeNorm(ctx, opts.norm, `${name}.norm1`, cin);
    this.conv1 = new StdConv2d(ctx, `${name}.conv1`, cin, cmid, 1);
    this.norm2 = makeNorm(ctx, opts.norm, `${name}.norm2`, cmid);
    this.conv2 = new StdConv2d(ctx, `${name}.conv2`, cmid, cmid, 3, stride, 1);
    this.norm3 = makeNorm(ctx, opts.norm, `${name}.norm3`, cmid, lastGamma);
    this.conv3 = new StdConv2d(ctx, `${name}.conv3`, cmid, cout, 1);
    if (stride !== 1 || cin !== cout) this.downsample = new StdConv2d(ctx, `${name}.downsample.conv`, cin, cout, 1, stride, 0);
  }

  apply(x: tf.Tensor4D, training: boolean): tf.Tensor4D {
    return tf.tidy(() => {
      const pre = this.norm1.applyRelu(x, training);
      const shortcut = this.downsample ? this.downsample.apply(pre) : x;
      let y = this.conv1.apply(pre);
      y = this.conv2.apply(this.norm2.applyRelu(y, training));
      y = this.conv3.apply(this.norm3.applyRelu(y, training));
      return residualSum(this.precision, y, shortcut);
    });
  }

  emit(g: InferenceEmitter, x: string): string {
    const pre = g.relu(this.norm1.emit(g, x));
    const shortcut = this.downsample ? this.downsample.emit(g, pre) : x;
    let y = this.conv1.emit(g, pre);
    y = this.conv2.emit(g, g.relu(this.norm2.emit(g, y)));
    y = this.conv3.emit(g, g.relu(this.norm3.emit(g, y)));
    return g.add(y, shortcut);
  }
}

export class BitResNet implements Backbone {
  readonly featureDim: number;
  private readonly stemConv: StdConv2d;
  private readonly stages: PreActBottleneck[][] = [];
  private readonly norm: Norm;
  private readonly fc?: Linear;

  constructor(
    ctx: Context,
    readonly spec: BitSpec,
    prefix = '',
  ) {
    const wf = spec.widthFactor;
    if (!Number.isInteger(wf) || wf < 1) throw new Error(`BiT width factor must be a positive integer, got ${wf}`);
    const base = (spec.width ?? BIT_WIDTH) * wf;
    const unit: UnitOptions = { norm: spec.norm ?? 'group', zeroInitLastNorm: spec.zeroInitLastNorm ?? true };
    this.stemConv =
      spec.stem === 'cifar'
        ? new StdConv2d(ctx, `${prefix}stem.conv`, 3, base, 3, 2, 1)
        : new StdConv2d(ctx, `${prefix}stem.conv`, 3, base, 7, 2, 3);
    let cin = base;
    spec.depths.forEach((n, s) => {
      const cout = 4 * base * 2 ** s;
      const stage: PreActBottleneck[] = [];
      for (let j = 0; j < n; j++) {
        const stride = j === 0 && s > 0 ? 2 : 1;
        stage.push(new PreActBottleneck(ctx, `${prefix}stages.${s}.blocks.${j}`, cin, cout, stride, unit));
        cin = cout;
      }
      this.stages.push(stage);
    });
    this.norm = makeNorm(ctx, unit.norm, `${prefix}norm`, cin);
    this.featureDim = cin;
    if (spec.numClasses) this.fc = new Linear(ctx, `${prefix}head.fc`, cin, spec.numClasses);
  }

  get hasClassifier(): boolean {
    return this.fc !== undefined;
  }

  /**
   * Pre-logits: norm -> ReLU -> global average pool after the last stage. `training` selects batch or
   * running statistics in the BatchNorm variant; GroupNorm has none.
   */
  features(x: tf.Tensor4D, training: boolean): tf.Tensor2D {
    return tf.tidy(() => {
      let y = this.stemConv.apply(x);
      if (this.spec.stem === 'bit') {
        // BiT pads with zeros (not -inf) before an unpadded max-pool.
        y = tf.maxPool(tf.pad(y, [[0, 0], [1, 1], [1, 1], [0, 0]]), 3, 2, 'valid');
      }
      for (const stage of this.stages) for (const unit of stage) y = unit.apply(y, training);
      return globalAvgPool(this.norm.applyRelu(y, training));
    });
  }

  emitFeatures(g: InferenceEmitter, x: string): string {
    let y = this.stemConv.emit(g, x);
    if (this.spec.stem === 'bit') y = g.zeroPaddedMaxPool(y, 3, 2, 1);
    for (const stage of this.stages) for (const unit of stage) y = unit.emit(g, y);
    return g.globalAvgPool(g.relu(this.norm.emit(g, y)));
  }

  /** The 1x1 head conv with bias, as a linear layer on the pooled features. */
  logits(features: tf.Tensor2D): tf.Tensor2D {
    if (!this.fc) throw new Error('this BiT ResNet has no classifier head');
    return this.fc.apply(features);
  }
}
