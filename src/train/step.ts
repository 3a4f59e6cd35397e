/**
 * One SGD step of a training method: forward every view, backward through everything but the
 * stop-gradients, update. Shared by the trainer and the throughput benchmark so both measure the same
 * work.
 *
 * With a loss scaler (engine.precision mixed16) the step is AMP's: the loss is multiplied by the
 * scale before the backward, the gradients are checked for Inf/NaN in one reduction, and then either
 * unscaled and applied, or dropped (the scaler halves its scale). Such a skipped step is routine, not
 * divergence: only a non-finite unscaled loss means the run diverged.
 *
 * Nothing inside a step waits for the device. The update is queued first, gated on the device by a
 * finite check (the loss's in fp32; the loss's and every gradient's under a scaler), so a non-finite
 * step leaves the weights and momentum as they were without anyone reading the loss. Then every scalar
 * of the step (the gate, the loss, its terms and monitors) goes back in one copy:
 *  - trainStep reads it at once: one synchronisation per step;
 *  - queueTrainStep, on an engine whose reads wait for a device (the CUDA engine), leaves it in flight
 *    (a copy queued behind the update, collected when it has run), so the trainer reads step k while
 *    step k + 1 runs, as PyTorch users read loss.item() late. Under a loss scaler it reads at once: the
 *    scaler's next scale depends on this step's gradients, which is the one synchronisation
 *    GradScaler makes too. On the host engines reading costs nothing and it reads at once.
 */
import { tf } from '../engine/tf.js';
import { readsWaitForDevice } from '../engine/device_queue.js';
import { trainingGrads } from './gradients.js';
import type { StepOutput, TrainMethod } from '../method/method.js';
import type { ParamStore } from '../model/params.js';
import { finiteFlag, unscaleGrads, type LossScaler } from '../optim/loss_scale.js';
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

/** A step whose update is queued and whose scalars are on their way back. */
export interface QueuedStep {
  /** The step's numbers, once their copy has run; rejects with the engine's error if the device failed. */
  result: Promise<StepResult>;
  /** Set when the numbers were read at once (a host engine, or a loss scaler): `result` is already settled. */
  ready?: StepResult;
}

export interface StepInputs {
  /** Labels of the batch rows, for methods that need them. */
  labels?: Int32Array;
  /** Dynamic loss scaling (mixed16). */
  scaler?: LossScaler;
}

/** Runs a step on views given as NHWC float32 buffers of `side` x `side` images; reads its numbers at once. */
export function trainStep(
  method: TrainMethod,
  store: ParamStore,
  optimizer: Sgd,
  views: readonly Float32Array[],
  side: number,
  lr: (group: string) => number,
  inputs: StepInputs = {},
): StepResult {
  const step = runStep(method, store, optimizer, views, side, lr, inputs);
  try {
    return step.finish(step.scalars.dataSync() as Float32Array);
  } finally {
    step.scalars.dispose();
  }
}

/** trainStep without waiting for the device: the numbers arrive with `result`. */
export function queueTrainStep(...args: Parameters<typeof trainStep>): QueuedStep {
  if (args[6]?.scaler || !readsWaitForDevice()) {
    const ready = trainStep(...args);
    return { result: Promise.resolve(ready), ready };
  }
  const step = runStep(...args);
  // Every engine takes its copy of the values when the read starts (the CUDA engine queues it on the
  // stream, the host engines read at once), so the tensor can go now and no tensor outlives the step.
  const values = step.scalars.data() as Promise<Float32Array>;
  step.scalars.dispose();
  return { result: values.then((v) => step.finish(v)) };
}

interface RanStep {
  /** [gate, loss, ...terms, collapseStd?, accuracy?] on the device, float32. */
  scalars: tf.Tensor1D;
  /** The StepResult of the scalars' values; updates the loss scaler. */
  finish(values: Float32Array): StepResult;
}

function runStep(...[method, store, optimizer, views, side, lr, inputs = {}]: Parameters<typeof trainStep>): RanStep {
  const batch = views[0]!.length / (side * side * 3);
  if (method.needsLabels && inputs.labels?.length !== batch) {
    throw new Error(`${method.name} needs ${batch} labels, got ${inputs.labels?.length ?? 'none'}`);
  }
  const vars = store.trainable().map((p) => p.variable);
  const { scaler } = inputs;
  const scale = scaler?.scale;
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
  const loss = unscaled ?? value;
  // A non-finite loss means non-finite gradients (fp32), and under a scaler non-finite scaled
  // gradients mean a scale too large: either way the update must not be applied.
  const gate = finiteFlag(scale === undefined ? [loss] : [loss, ...Object.values(grads)]);
  const update = scale === undefined ? grads : unscaleGrads(grads, scale);
  optimizer.step(update, lr, gate);
  const termNames = Object.keys(kept.terms);
  const scalars = tf.tidy(() =>
    tf.concat([gate, loss, ...termNames.map((k) => kept.terms[k]!), ...(kept.collapseStd ? [kept.collapseStd] : []), ...(kept.accuracy ? [kept.accuracy] : [])].map((t) => tf.reshape(tf.cast(t, 'float32'), [1]))),
  ) as tf.Tensor1D;
  tf.dispose([value, gate, ...(unscaled ? [unscaled] : []), ...Object.values(grads), ...(update !== grads ? Object.values(update) : []), ...monitorTensors(kept)]);
  const finish = (v: Float32Array): StepResult => {
    const applied = v[0] === 1;
    const result: StepResult = { loss: v[1]!, terms: Object.fromEntries(termNames.map((k, i) => [k, v[2 + i]!])), skipped: !applied };
    let next = 2 + termNames.length;
    if (kept.collapseStd) result.collapseStd = v[next++];
    if (kept.accuracy) result.accuracy = v[next++];
    if (scaler) {
      result.lossScale = scale;
      // A non-finite loss is divergence (the trainer stops) and says nothing about the scale; with a
      // finite loss the gate is the gradients' finite check.
      if (Number.isFinite(result.loss)) scaler.update(applied);
    }
    return result;
  };
  return { scalars, finish };
}

function monitorTensors(out: Pick<StepOutput, 'terms' | 'collapseStd' | 'accuracy'>): tf.Scalar[] {
  return [...Object.values(out.terms), ...(out.collapseStd ? [out.collapseStd] : []), ...(out.accuracy ? [out.accuracy] : [])];
}
