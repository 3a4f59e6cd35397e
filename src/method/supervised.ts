/**
 * Supervised fine-tuning, the "BiT" arm of BiT+SimSiam (Kolesnikov et al.'s BiT-HyperRule): the
 * backbone plus one linear layer `head.fc` on the pooled features, trained with cross-entropy on the
 * labels.
 *
 * - The head starts at exactly zero (weights and bias), as BiT fine-tuning does: the first step sees
 *   uniform predictions (loss ln K) and the backbone's pretrained features are not disturbed by a
 *   random head's gradients.
 * - One augmented view per item, random-resized crop and horizontal flip only (data.augment's
 *   crop_scale, crop_ratio and flip_prob): BiT-HyperRule crops and flips but uses no colour
 *   augmentation, so jitter, grayscale and blur are switched off here whatever data.augment says.
 *   (BiT's MixUp for large datasets is not implemented.)
 * - Optimiser and schedule come from train.*: BiT-HyperRule is SGD momentum 0.9, lr 0.003 x batch/512
 *   (train.base_lr 0.003 with train.lr_batch_ref 512), no weight decay, linear warm-up then x0.1 at
 *   30/60/90 % of training (train.schedule: steps).
 *
 * The backbone keeps its "backbone." names, so `simtrip eval` / `embed` read a supervised checkpoint
 * like an SSL one; the head is saved under "head.fc." beside it.
 */
import type { AugmentConfig } from '../config/schema.js';
import { tf } from '../engine/tf.js';
import { type Context, Linear } from '../model/layers.js';
import type { Backbone } from '../model/resnet.js';
import { accuracy, crossEntropy } from './losses.js';
import type { StepOutput, TrainMethod } from './method.js';
import { METHOD_VIEWS } from './views.js';

export const SUPERVISED_HEAD = 'head.fc';

export class Supervised implements TrainMethod {
  readonly name = 'supervised';
  readonly viewSources = METHOD_VIEWS.supervised.viewSources;
  readonly needsLabels = true;
  readonly head: Linear;

  constructor(ctx: Context, readonly backbone: Backbone, readonly numClasses: number) {
    if (!Number.isInteger(numClasses) || numClasses < 2) throw new Error(`supervised training needs at least 2 classes, got ${numClasses}`);
    this.head = new Linear(ctx, SUPERVISED_HEAD, backbone.featureDim, numClasses, true);
    for (const v of [this.head.weight, this.head.bias!]) {
      tf.tidy(() => v.assign(tf.zerosLike(v)));
    }
  }

  /** Only the geometric part of data.augment (see the module comment). */
  augment(cfg: AugmentConfig): AugmentConfig {
    return METHOD_VIEWS.supervised.augment(cfg);
  }

  logits(x: tf.Tensor4D, training: boolean): tf.Tensor2D {
    return this.head.apply(this.backbone.features(x, training));
  }

  step(views: tf.Tensor4D[], labels?: tf.Tensor1D): StepOutput {
    if (views.length !== 1) throw new Error(`supervised takes 1 view, got ${views.length}`);
    if (!labels) throw new Error('supervised training needs the batch labels');
    const logits = this.logits(views[0]!, true);
    return { loss: crossEntropy(logits, labels), terms: {}, accuracy: accuracy(logits, labels) };
  }
}
