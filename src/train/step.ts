/**
 * One SGD step of an SSL method: forward both views, backward through everything but the
 * stop-gradient, update. Shared by the trainer and the throughput benchmark so both measure the same
 * work.
 */
import { tf } from '../engine/tf.js';
import type { SslMethod } from '../method/simsiam.js';
import type { ParamStore } from '../model/params.js';
import type { Sgd } from '../optim/sgd.js';

export interface StepResult {
  loss: number;
  collapseStd: number;
  /** Named loss terms (e.g. SimTriplet's intra/inter-sample parts). */
  terms: Record<string, number>;
}

/** Runs a step on views given as NHWC float32 buffers of `side` x `side` images. */
export function trainStep(
  method: SslMethod,
  store: ParamStore,
  optimizer: Sgd,
  views: readonly Float32Array[],
  side: number,
  lr: (group: string) => number,
): StepResult {
  const batch = views[0]!.length / (side * side * 3);
  const vars = store.trainable().map((p) => p.variable);
  let kept: tf.Scalar[] = [];
  let termNames: string[] = [];
  const { value, grads } = tf.variableGrads(() => {
    const xs = views.map((v) => tf.tensor4d(v, [batch, side, side, 3]));
    const out = method.step(xs);
    termNames = Object.keys(out.terms);
    // Monitors are read after the step; keep them past variableGrads' scope.
    kept = [out.collapseStd, ...termNames.map((k) => out.terms[k]!)].map((t) => tf.keep(t));
    return out.loss;
  }, vars);
  const loss = value.dataSync()[0]!;
  // A non-finite loss means non-finite gradients: the update is skipped so the weights stay good.
  if (Number.isFinite(loss)) optimizer.step(grads, lr);
  const [collapse, ...terms] = kept.map((t) => t.dataSync()[0]!);
  tf.dispose([value, ...Object.values(grads), ...kept]);
  return { loss, collapseStd: collapse!, terms: Object.fromEntries(termNames.map((k, i) => [k, terms[i]!])) };
}
