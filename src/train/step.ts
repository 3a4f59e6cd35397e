/**
 * One SGD step of a training method: forward every view, backward through everything but the
 * stop-gradients, update. Shared by the trainer and the throughput benchmark so both measure the same
 * work.
 *
 * With a loss scaler (engine.precision mixed16) the step is AMP's: the loss is multiplied by the
 * scale before the backward, the gradients are checked for Inf/NaN in one reduction, and then either
 * unscaled and applied, or dropped (the scaler halves its scale). Such a skipped step is routine, not
 * divergence: only a non-finite unscaled loss means the run diverged.
 */
import { tf } from '../engine/tf.js';
import { trainingGrads } from './gradients.js';
import type { StepOutput, TrainMethod } from '../method/method.js';
import type { ParamStore } from '../model/params.js';
import { gradsAreFinite, unscaleGrads, type LossScaler } from '../optim/loss_scale.js';
import type { Sgd } from '../optim/sgd.js';

export interface StepResult {
  /** The unscaled loss. */
  loss: number;
  /** Collapse monitor (SSL methods). */
  collapseStd?: number;
  /** Batch accuracy (supervised). */
  accuracy?: number;
  /** Named loss terms (e.g. SimTriplet's loss_inter / loss_intra). */
  terms: Record<string, number>;
  /** True when no update was applied (non-finite loss, or non-finite scaled gradients in mixed16). */
  skipped: boolean;
  /** The loss scale this step ran with (mixed16 only). */
  lossScale?: number;
}

export interface StepInputs {
  /** Labels of the batch rows, for methods that need them. */
  labels?: Int32Array;
  /** Dynamic loss scaling (mixed16). */
  scaler?: LossScaler;
}

/** Runs a step on views given as NHWC float32 buffers of `side` x `side` images. */
export function trainStep(
  method: TrainMethod,
  store: ParamStore,
  optimizer: Sgd,
  views: readonly Float32Array[],
  side: number,
  lr: (group: string) => number,
  inputs: StepInputs = {},
): StepResult {
  const batch = views[0]!.length / (side * side * 3);
  if (method.needsLabels && inputs.labels?.length !== batch) {
    throw new Error(`${method.name} needs ${batch} labels, got ${inputs.labels?.length ?? 'none'}`);
  }
  const vars = store.trainable().map((p) => p.variable);
  const scale = inputs.scaler?.scale;
  let unscaled: tf.Scalar | undefined;
  let kept: Pick<StepOutput, 'terms' | 'collapseStd' | 'accuracy'> = { terms: {} };
  const { value, grads } = trainingGrads(() => {
    const xs = views.map((v) => tf.tensor4d(v, [batch, side, side, 3]));
    const labels = method.needsLabels ? tf.tensor1d(inputs.labels!, 'int32') : undefined;
    const out = method.step(xs, labels);
    // Monitors and the unscaled loss are read after the step; keep them past variableGrads' scope.
    kept = { terms: out.terms, collapseStd: out.collapseStd, accuracy: out.accuracy };
    monitorTensors(kept).forEach((t) => tf.keep(t));
    if (scale === undefined) return out.loss;
    unscaled = tf.keep(out.loss);
    return tf.mul(out.loss, scale) as tf.Scalar;
  }, vars);
  const loss = (unscaled ?? value).dataSync()[0]!;
  let skipped = !Number.isFinite(loss);
  if (inputs.scaler) {
    // A non-finite loss is divergence (the trainer stops) and says nothing about the scale.
    if (!skipped) {
      const finite = gradsAreFinite(grads);
      skipped = !inputs.scaler.update(finite);
      if (!skipped) {
        const plain = unscaleGrads(grads, scale!);
        optimizer.step(plain, lr);
        tf.dispose(Object.values(plain));
      }
    }
  } else if (!skipped) {
    // A non-finite loss means non-finite gradients: the update is skipped so the weights stay good.
    optimizer.step(grads, lr);
  }
  const read = (t: tf.Scalar | undefined): number | undefined => t?.dataSync()[0];
  const result: StepResult = {
    loss,
    terms: Object.fromEntries(Object.entries(kept.terms).map(([k, t]) => [k, read(t)!])),
    skipped,
  };
  if (kept.collapseStd) result.collapseStd = read(kept.collapseStd);
  if (kept.accuracy) result.accuracy = read(kept.accuracy);
  if (scale !== undefined) result.lossScale = scale;
  tf.dispose([value, ...(unscaled ? [unscaled] : []), ...Object.values(grads), ...monitorTensors(kept)]);
  return result;
}

function monitorTensors(out: Pick<StepOutput, 'terms' | 'collapseStd' | 'accuracy'>): tf.Scalar[] {
  return [...Object.values(out.terms), ...(out.collapseStd ? [out.collapseStd] : []), ...(out.accuracy ? [out.accuracy] : [])];
}
