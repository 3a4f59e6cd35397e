/**
 * BatchNorm ResNets in torchvision's layout and parameter names (ResNet v1.5: stride on the 3x3 conv
 * of bottlenecks). The CIFAR stem is a 3x3 stride-1 conv without max-pool.
 *
 *   conv1 -> bn1 -> relu [-> maxpool] -> layer1..layer4 -> global avg pool [-> fc]
 */
import { tf } from '../engine/tf.js';
import { BatchNorm, Context, Conv2d, Linear, globalAvgPool, residualSum, type Precision } from './layers.js';
import type { InferenceEmitter } from './emitter.js';

export type BlockKind = 'basic' | 'bottleneck';

export interface ResNetSpec {
  block: BlockKind;
  /** Blocks per stage, e.g. [2,2,2,2] for ResNet-18. */
  layers: number[];
  stem: 'cifar' | 'imagenet';
  /** Base channel count (64 in torchvision). */
  width: number;
  zeroInitResidual: boolean;
  /** Adds a classifier `fc` when set. */
  numClasses?: number;
}

export const RESNET_SPECS = {
  resnet18: { block: 'basic', layers: [2, 2, 2, 2] },
  resnet50: { block: 'bottleneck', layers: [3, 4, 6, 3] },
} as const satisfies Record<string, { block: BlockKind; layers: number[] }>;

/** A backbone maps NHWC images to globally pooled features. */
export interface Backbone {
  readonly featureDim: number;
  features(x: tf.Tensor4D, training: boolean): tf.Tensor2D;
  /** Inference-mode `features` described to a graph builder: NCHW images in, [N, featureDim] out. */
  emitFeatures(g: InferenceEmitter, x: string): string;
}

interface Block {
  apply(x: tf.Tensor4D, training: boolean): tf.Tensor4D;
  emit(g: InferenceEmitter, x: string): string;
}

type Downsample = { conv: Conv2d; bn: BatchNorm } | undefined;

function emitShortcut(g: InferenceEmitter, x: string, downsample: Downsample): string {
  return downsample ? downsample.bn.emit(g, downsample.conv.emit(g, x)) : x;
}

class BasicBlock implements Block {
  static readonly expansion = 1;
  private readonly conv1: Conv2d;
  private readonly bn1: BatchNorm;
  private readonly conv2: Conv2d;
  private readonly bn2: BatchNorm;
  private readonly downsample?: { conv: Conv2d; bn: BatchNorm };
  /** The residual sum is an fp16 tensor under autocast (add of two halves). */
  private readonly precision?: Precision;

  constructor(ctx: Context, name: string, cin: number, planes: number, stride: number, zeroInit: boolean) {
    this.precision = ctx.precision;
    this.conv1 = new Conv2d(ctx, `${name}.conv1`, cin, planes, 3, stride, 1);
    this.bn1 = new BatchNorm(ctx, `${name}.bn1`, planes);
    this.conv2 = new Conv2d(ctx, `${name}.conv2`, planes, planes, 3, 1, 1);
    this.bn2 = new BatchNorm(ctx, `${name}.bn2`, planes, { gammaInit: zeroInit ? 0 : 1 });
    this.downsample = makeDownsample(ctx, name, cin, planes, stride);
  }

  apply(x: tf.Tensor4D, training: boolean): tf.Tensor4D {
    let y = this.bn1.applyRelu(this.conv1.apply(x), training);
    y = this.bn2.apply(this.conv2.apply(y), training);
    const shortcut = this.downsample ? this.downsample.bn.apply(this.downsample.conv.apply(x), training) : x;
    return tf.relu(residualSum(this.precision, y, shortcut)) as tf.Tensor4D;
  }

  emit(g: InferenceEmitter, x: string): string {
    let y = g.relu(this.bn1.emit(g, this.conv1.emit(g, x)));
    y = this.bn2.emit(g, this.conv2.emit(g, y));
    return g.relu(g.add(y, emitShortcut(g, x, this.downsample)));
  }
}

class Bottleneck implements Block {
  static readonly expansion = 4;
  private readonly conv1: Conv2d;
  private readonly bn1: BatchNorm;
  private readonly conv2: Conv2d;
  private readonly bn2: BatchNorm;
  private readonly conv3: Conv2d;
  private readonly bn3: BatchNorm;
  private readonly downsample?: { conv: Conv2d; bn: BatchNorm };
  /** The residual sum is an fp16 tensor under autocast (add of two halves). */
  private readonly precision?: Precision;

  constructor(ctx: Context, name: string, cin: number, planes: number, stride: number, zeroInit: boolean) {
    const cout = planes * Bottleneck.expansion;
    this.precision = ctx.precision;
    this.conv1 = new Conv2d(ctx, `${name}.conv1`, cin, planes, 1);
    this.bn1 = new BatchNorm(ctx, `${name}.bn1`, planes);
    this.conv2 = new Conv2d(ctx, `${name}.conv2`, planes, planes, 3, stride, 1);
    this.bn2 = new BatchNorm(ctx, `${name}.bn2`, planes);
    this.conv3 = new Conv2d(ctx, `${name}.conv3`, planes, cout, 1);
    this.bn3 = new BatchNorm(ctx, `${name}.bn3`, cout, { gammaInit: zeroInit ? 0 : 1 });
    this.downsample = makeDownsample(ctx, name, cin, cout, stride);
  }

  apply(x: tf.Tensor4D, training: boolean): tf.Tensor4D {
    let y = this.bn1.applyRelu(this.conv1.apply(x), training);
    y = this.bn2.applyRelu(this.conv2.apply(y), training);
    y = this.bn3.apply(this.conv3.apply(y), training);
    const shortcut = this.downsample ? this.downsample.bn.apply(this.downsample.conv.apply(x), training) : x;
    return tf.relu(residualSum(this.precision, y, shortcut)) as tf.Tensor4D;
  }

  emit(g: InferenceEmitter, x: string): string {
    let y = g.relu(this.bn1.emit(g, this.conv1.emit(g, x)));
    y = g.relu(this.bn2.emit(g, this.conv2.emit(g, y)));
    y = this.bn3.emit(g, this.conv3.emit(g, y));
    return g.relu(g.add(y, emitShortcut(g, x, this.downsample)));
  }
}

function makeDownsample(ctx: Context, name: string, cin: number, cout: number, stride: number) {
  if (stride === 1 && cin === cout) return undefined;
  return {
    conv: new Conv2d(ctx, `${name}.downsample.0`, cin, cout, 1, stride, 0),
    bn: new BatchNorm(ctx, `${name}.downsample.1`, cout),
  };
}

export class ResNet implements Backbone {
  readonly featureDim: number;
  private readonly conv1: Conv2d;
  private readonly bn1: BatchNorm;
  private readonly stages: Block[][] = [];
  private readonly fc?: Linear;

  constructor(
    ctx: Context,
    readonly spec: ResNetSpec,
    prefix = '',
  ) {
    const w = spec.width;
    const Block = spec.block === 'basic' ? BasicBlock : Bottleneck;
    this.conv1 =
      spec.stem === 'cifar'
        ? new Conv2d(ctx, `${prefix}conv1`, 3, w, 3, 1, 1)
        : new Conv2d(ctx, `${prefix}conv1`, 3, w, 7, 2, 3);
    this.bn1 = new BatchNorm(ctx, `${prefix}bn1`, w);
    let cin = w;
    spec.layers.forEach((n, s) => {
      const planes = w * 2 ** s;
      const stage: Block[] = [];
      for (let b = 0; b < n; b++) {
        const stride = b === 0 && s > 0 ? 2 : 1;
        stage.push(new Block(ctx, `${prefix}layer${s + 1}.${b}`, cin, planes, stride, spec.zeroInitResidual));
        cin = planes * Block.expansion;
      }
      this.stages.push(stage);
    });
    this.featureDim = cin;
    if (spec.numClasses) this.fc = new Linear(ctx, `${prefix}fc`, cin, spec.numClasses);
  }

  features(x: tf.Tensor4D, training: boolean): tf.Tensor2D {
    let y = this.bn1.applyRelu(this.conv1.apply(x), training);
    // torchvision pads the max-pool with -inf, which tfjs' numeric pad also does.
    if (this.spec.stem === 'imagenet') y = tf.maxPool(y, 3, 2, 1);
    for (const stage of this.stages) for (const block of stage) y = block.apply(y, training);
    return globalAvgPool(y);
  }

  emitFeatures(g: InferenceEmitter, x: string): string {
    let y = g.relu(this.bn1.emit(g, this.conv1.emit(g, x)));
    if (this.spec.stem === 'imagenet') y = g.maxPool(y, 3, 2, 1);
    for (const stage of this.stages) for (const block of stage) y = block.emit(g, y);
    return g.globalAvgPool(y);
  }

  logits(features: tf.Tensor2D): tf.Tensor2D {
    if (!this.fc) throw new Error('this ResNet has no classifier head');
    return this.fc.apply(features);
  }
}
