/**
 * SimSiam (Chen & He, 2021), following the official implementation:
 *
 *   x1, x2 -> backbone -> projector -> z1, z2 -> predictor -> p1, p2
 *   loss = D(p1, z2)/2 + D(p2, z1)/2, with the gradient stopped on z
 *
 * Projector (3 layers; 2 in the CIFAR recipe): [Linear(no bias) -> BN -> ReLU] x (layers-1) ->
 * Linear(no bias) -> BN(no affine). The official code's last Linear has a frozen bias; a BN without
 * affine right after it cancels any bias, so it is left out.
 * Predictor: Linear(no bias) -> BN -> ReLU -> Linear(bias). Parameter names follow the official
 * nn.Sequential indices (projector.0, projector.1, projector.3, ...).
 */
import { tf } from '../engine/tf.js';
import { BatchNorm, Context, Linear } from '../model/layers.js';
import type { Backbone } from '../model/resnet.js';
import { collapseStd, simsiamLoss } from './losses.js';
import type { StepOutput, TrainMethod, ViewSource } from './method.js';
import { METHOD_VIEWS } from './views.js';

export interface SimSiamSpec {
  projDim: number;
  projHidden: number;
  projLayers: 2 | 3;
  predHidden: number;
}

class MlpLayer {
  readonly linear: Linear;
  readonly bn: BatchNorm;
  constructor(ctx: Context, prefix: string, index: number, cin: number, cout: number, readonly relu: boolean, affine = true) {
    this.linear = new Linear(ctx, `${prefix}.${index}`, cin, cout, false);
    this.bn = new BatchNorm(ctx, `${prefix}.${index + 1}`, cout, { affine });
  }
  apply(x: tf.Tensor2D, training: boolean): tf.Tensor2D {
    const z = this.linear.apply(x);
    return this.relu ? this.bn.applyRelu(z, training) : this.bn.apply(z, training);
  }
}

export class Projector {
  private readonly layers: MlpLayer[] = [];
  constructor(ctx: Context, cin: number, spec: SimSiamSpec) {
    let c = cin;
    for (let i = 0; i < spec.projLayers; i++) {
      const last = i === spec.projLayers - 1;
      const cout = last ? spec.projDim : spec.projHidden;
      this.layers.push(new MlpLayer(ctx, 'projector', 3 * i, c, cout, !last, !last));
      c = cout;
    }
  }
  apply(x: tf.Tensor2D, training: boolean): tf.Tensor2D {
    return this.layers.reduce((y, l) => l.apply(y, training), x);
  }
}

export class Predictor {
  private readonly hidden: MlpLayer;
  private readonly out: Linear;
  constructor(ctx: Context, spec: SimSiamSpec) {
    this.hidden = new MlpLayer(ctx, 'predictor', 0, spec.projDim, spec.predHidden, true);
    this.out = new Linear(ctx, 'predictor.3', spec.predHidden, spec.projDim, true);
  }
  apply(z: tf.Tensor2D, training: boolean): tf.Tensor2D {
    return this.out.apply(this.hidden.apply(z, training));
  }
}

/**
 * Backbone + projector + predictor with SimSiam's per-view embedding: the part SimSiam and SimTriplet
 * share. They differ only in the views they take and the pairs their loss compares.
 */
export abstract class SiameseMethod implements TrainMethod {
  abstract readonly name: string;
  abstract readonly viewSources: readonly ViewSource[];
  readonly needsLabels = false;
  readonly projector: Projector;
  readonly predictor: Predictor;

  constructor(ctx: Context, readonly backbone: Backbone, spec: SimSiamSpec) {
    this.projector = new Projector(ctx, backbone.featureDim, spec);
    this.predictor = new Predictor({ ...ctx, group: 'predictor' }, spec);
  }

  /** z = projector(backbone(x)), p = predictor(z); views pass separately so BN sees one view's batch. */
  embed(x: tf.Tensor4D): Embedding {
    const z = this.projector.apply(this.backbone.features(x, true), true);
    return { z, p: this.predictor.apply(z, true) };
  }

  /** Embeds each view on its own (the official code runs the encoder once per view). */
  protected embedViews(views: tf.Tensor4D[]): Embedding[] {
    const n = this.viewSources.length;
    if (views.length !== n) throw new Error(`${this.name} takes ${n} views, got ${views.length}`);
    return views.map((v) => this.embed(v));
  }

  abstract step(views: tf.Tensor4D[]): StepOutput;
}

export interface Embedding {
  z: tf.Tensor2D;
  p: tf.Tensor2D;
}

export class SimSiam extends SiameseMethod {
  readonly name = 'simsiam';
  readonly viewSources = METHOD_VIEWS.simsiam.viewSources;

  step(views: tf.Tensor4D[]): StepOutput {
    const [a, b] = this.embedViews(views) as [Embedding, Embedding];
    const loss = simsiamLoss(a.p, b.p, a.z, b.z);
    return { loss, terms: {}, collapseStd: collapseStd(a.z) };
  }
}
