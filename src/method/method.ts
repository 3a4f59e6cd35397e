/**
 * What the trainer needs from a training method (SimSiam, SimTriplet, supervised fine-tuning): how
 * many augmented views a batch has, what data it needs besides images, and one differentiable step.
 */
import type { AugmentConfig } from '../config/schema.js';
import type { tf } from '../engine/tf.js';
import type { Backbone } from '../model/resnet.js';

/** What one training step of a method produces (tensors; trainStep reads them after the backward). */
export interface StepOutput {
  loss: tf.Scalar;
  /** Named parts of the loss for the metrics log (e.g. SimTriplet's loss_inter / loss_intra). */
  terms: Record<string, tf.Scalar>;
  /** Collapse monitor on the first view's z (SSL methods). */
  collapseStd?: tf.Scalar;
  /** Fraction of the batch classified correctly (supervised). */
  accuracy?: tf.Scalar;
}

/** Where a view's image comes from: the batch item itself, or one of its spatial neighbours. */
export type ViewSource = 'item' | 'neighbour';

export interface TrainMethod {
  readonly name: string;
  /**
   * One entry per view, in the order `step` takes them: SimSiam ['item', 'item'], SimTriplet
   * ['item', 'neighbour', 'item'], supervised ['item'].
   */
  readonly viewSources: readonly ViewSource[];
  readonly backbone: Backbone;
  /** Needs the train split's labels (passed to `step` as int32 [B]). */
  readonly needsLabels: boolean;
  /** The augmentation the method trains with, from data.augment (default: data.augment as is). */
  augment?(cfg: AugmentConfig): AugmentConfig;
  /** Runs the method on a batch of views in training mode. */
  step(views: tf.Tensor4D[], labels?: tf.Tensor1D): StepOutput;
}

/** True when some view is drawn from a neighbour (the data must provide DataSplits.neighbours). */
export function needsNeighbours(method: Pick<TrainMethod, 'viewSources'>): boolean {
  return method.viewSources.includes('neighbour');
}
