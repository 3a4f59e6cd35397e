/**
 * One training step on two backends from the same seeded model and inputs: the loss, every gradient,
 * and after one SGD update every weight, running statistic and momentum buffer. Any method: its views
 * (two for SimSiam, three for SimTriplet, one for the supervised arm) and, where it needs them, labels.
 * What the per-kernel checks cannot show: that the kernels compose into the same training.
 */
import { ConfigSchema, type Config } from '../config/schema.js';
import { tf } from '../engine/tf.js';
import { buildSslModel, type SslModel } from '../model/build.js';
import { Sgd } from '../optim/sgd.js';
import { Rng } from '../util/rng.js';
import { relativeError } from './compare.js';

export interface StepSpec {
  label: string;
  model: Partial<Config['model']>;
  method: Partial<Config['method']>;
  batch: number;
  side: number;
  /** engine.precision of the model (mixed16 rounds at layer boundaries). */
  precision?: Config['engine']['precision'];
  /** Classes of the supervised arm's labels. */
  classes?: number;
  /**
   * 'tensor' (default): every gradient tensor, weight and statistic within 1e-4 of the reference.
   * 'whole': only the model's gradient as a whole, within 1e-2; the per-tensor figures are reported.
   * For a randomly initialised BiT-GroupNorm SimSiam step: it is ill-conditioned (the residual stream
   * grows unnormalised through 16 pre-activation units, and small gradient tensors come from sums
   * that cancel), so that even the cpu and onednn engines, both exact float32, disagree by 2e-3 on the
   * whole gradient and by several percent on single tensors. The GroupNorm and weight-standardisation
   * kernels themselves are gated at 1e-4 on BiT's gradients from real weights (check:cuda's golden part).
   */
  gate?: 'tensor' | 'whole';
}

export interface StepRecord {
  loss: number;
  grads: Map<string, Float32Array>;
  /** Every parameter and buffer after the update, and the momentum buffers (`<name>/momentum`). */
  after: Map<string, Float32Array>;
}

export const STEP_LR = 0.05;

/** `count` batches of random NHWC views of the spec's size. */
export function randomViews(rng: Rng, spec: StepSpec, count: number): Float32Array[] {
  return Array.from({ length: count }, () => Float32Array.from({ length: spec.batch * spec.side * spec.side * 3 }, () => rng.normal()));
}

/** The spec's model from a seeded initialisation, and the SGD optimiser every check trains it with. */
export function buildStepModel(spec: StepSpec, seed: number, precision = spec.precision): { model: SslModel; opt: Sgd } {
  const cfg = ConfigSchema.parse({ model: spec.model, method: spec.method });
  const model = buildSslModel(cfg.model, cfg.method, seed, { precision, numClasses: spec.classes });
  return { model, opt: new Sgd(model.store.trainable(), { momentum: 0.9, weightDecay: 5e-4, decayNormAndBias: true }) };
}

/** One step on `backend` from the seeded initialisation. */
export async function stepOn(backend: string, spec: StepSpec): Promise<StepRecord> {
  await tf.setBackend(backend);
  const { model, opt } = buildStepModel(spec, 7);
  const params = model.store.trainable();
  const xs = randomViews(new Rng(`step-parity-${spec.label}`), spec, model.method.viewSources.length);
  const labels = model.method.needsLabels ? Int32Array.from({ length: spec.batch }, (_, i) => i % (spec.classes ?? 2)) : undefined;
  const { value, grads } = tf.variableGrads(
    () => model.method.step(xs.map((v) => tf.tensor4d(v, [spec.batch, spec.side, spec.side, 3])), labels && tf.tensor1d(labels, 'int32')).loss,
    params.map((p) => p.variable),
  );
  const record: StepRecord = { loss: (await value.data())[0]!, grads: new Map(), after: new Map() };
  for (const p of params) record.grads.set(p.name, (await grads[p.variable.name]!.data()) as Float32Array);
  opt.step(grads, () => STEP_LR);
  for (const p of model.store.list()) record.after.set(p.name, (await p.variable.data()) as Float32Array);
  for (const [name, buf] of opt.buffers) record.after.set(`${name}/momentum`, (await buf.data()) as Float32Array);
  tf.dispose([value, ...Object.values(grads)]);
  opt.dispose();
  model.store.dispose();
  return record;
}

export interface StepComparison {
  lossDifference: number;
  /** ||g - g_ref|| / ||g_ref|| over every gradient of the model at once (the update's direction and size). */
  wholeGradient: number;
  /** Worst relative error over gradients with a norm above 1e-6 (zero-init BNs give exact zeros). */
  worstGradient: { name: string; error: number };
  /** Worst over the state after the update; where a tensor is pure rounding noise around zero (the
   * running mean of a BN whose input is itself batch-normalised) the absolute difference is used. */
  worstState: { name: string; error: number };
  missing: string[];
}

export function compareSteps(got: StepRecord, ref: StepRecord): StepComparison {
  const missing = [...ref.grads.keys()].filter((k) => !got.grads.has(k)).concat([...ref.after.keys()].filter((k) => !got.after.has(k)));
  let worstGradient = { name: '', error: 0 };
  let diff2 = 0;
  let ref2 = 0;
  for (const [name, g] of ref.grads) {
    const other = got.grads.get(name);
    if (!other) continue;
    g.forEach((v, i) => {
      diff2 += (other[i]! - v) ** 2;
      ref2 += v * v;
    });
    const norm = Math.sqrt(g.reduce((a, v) => a + v * v, 0));
    const error = norm > 1e-6 ? relativeError(other, g) : Math.sqrt(other.reduce((a, v) => a + v * v, 0));
    if (error > worstGradient.error) worstGradient = { name, error };
  }
  let worstState = { name: '', error: 0 };
  for (const [name, w] of ref.after) {
    const other = got.after.get(name);
    if (!other) continue;
    const maxDiff = w.reduce((m, v, i) => Math.max(m, Math.abs(v - other[i]!)), 0);
    const error = maxDiff < 1e-6 ? 0 : relativeError(other, w);
    if (error > worstState.error) worstState = { name, error };
  }
  return { lossDifference: Math.abs(got.loss - ref.loss), wholeGradient: Math.sqrt(diff2) / Math.max(Math.sqrt(ref2), 1e-30), worstGradient, worstState, missing };
}
