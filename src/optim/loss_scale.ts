/**
 * Dynamic loss scaling for engine.precision 'mixed16', with torch.cuda.amp.GradScaler's rules.
 *
 * Under fp16 numerics (src/ops/fp16_round.ts) gradients live on the half grid: magnitudes below
 * 2^-24 flush to zero and above 65504 overflow to Inf. Multiplying the loss by a large scale S moves
 * every gradient up by S, out of the flush zone; the gradients are divided by S again (exactly: S is
 * a power of two) before the float32 master weights are updated. A scale that is too large shows up
 * as Inf/NaN gradients: that step is skipped and S halved. After `growthInterval` consecutive clean
 * steps S doubles, probing for the largest scale that does not overflow.
 *
 * Intended use in a training step (src/train/step.ts):
 *
 *   const scaler = new LossScaler();                  // once per run; scaler.load(saved) on resume
 *   const { value, grads } = tf.variableGrads(() => tf.mul(lossFn(), scaler.scale) as tf.Scalar, vars);
 *   const finite = gradsAreFinite(grads);             // one sync for all gradients
 *   if (scaler.update(finite)) {                       // false: skip this step (scale already halved)
 *     const plain = unscaleGrads(grads, scaleUsed);     // the scale the loss was multiplied by
 *     sgd.step(plain, lr);
 *     tf.dispose(Object.values(plain));
 *   }
 *   tf.dispose([value, ...Object.values(grads)]);
 *   log({ loss_scale: scaler.scale });                 // and scaler.state() into the checkpoint
 *
 * Read `scaler.scale` before `update`: update may change it, and unscaling must use the scale the
 * loss was multiplied by.
 */
import { z } from 'zod';
import { tf } from '../engine/tf.js';
import { ALL_FINITE, canRunKernel } from '../engine/custom_kernels.js';

export interface LossScalerOptions {
  /** First scale (GradScaler: 2^16). */
  initScale?: number;
  /** Multiplies the scale after growthInterval clean steps (2). */
  growthFactor?: number;
  /** Multiplies the scale after a step with non-finite gradients (0.5). */
  backoffFactor?: number;
  /** Consecutive clean steps before the scale grows (2000). */
  growthInterval?: number;
}

/** What a checkpoint keeps: plain JSON. */
export const LossScalerStateSchema = z
  .object({
    scale: z.number().positive().finite(),
    /** Clean steps since the scale last changed (GradScaler's growth tracker). */
    goodSteps: z.number().int().nonnegative(),
  })
  .strict();

export type LossScalerState = z.infer<typeof LossScalerStateSchema>;

function positiveFinite(name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) throw new RangeError(`LossScaler: ${name} must be a positive finite number, got ${value}`);
  return value;
}

export class LossScaler {
  private currentScale: number;
  private goodSteps = 0;
  readonly growthFactor: number;
  readonly backoffFactor: number;
  readonly growthInterval: number;

  constructor(opts: LossScalerOptions = {}) {
    this.currentScale = positiveFinite('initScale', opts.initScale ?? 2 ** 16);
    this.growthFactor = positiveFinite('growthFactor', opts.growthFactor ?? 2);
    this.backoffFactor = positiveFinite('backoffFactor', opts.backoffFactor ?? 0.5);
    this.growthInterval = opts.growthInterval ?? 2000;
    if (this.growthFactor <= 1) throw new RangeError(`LossScaler: growthFactor must be > 1, got ${this.growthFactor}`);
    if (this.backoffFactor >= 1) throw new RangeError(`LossScaler: backoffFactor must be < 1, got ${this.backoffFactor}`);
    if (!Number.isInteger(this.growthInterval) || this.growthInterval < 1) {
      throw new RangeError(`LossScaler: growthInterval must be a positive integer, got ${this.growthInterval}`);
    }
  }

  /** The factor the next loss is multiplied by. */
  get scale(): number {
    return this.currentScale;
  }

  /**
   * Records the outcome of a step and returns whether its update should be applied. Non-finite
   * gradients: scale *= backoffFactor, counter reset, skip. Finite: counter + 1, and at
   * growthInterval the scale grows (unless that would overflow float32) and the counter restarts.
   */
  update(gradsFinite: boolean): boolean {
    if (!gradsFinite) {
      // Floor at the smallest positive float32: a scale of 0 would zero every later gradient.
      this.currentScale = Math.max(this.currentScale * this.backoffFactor, 2 ** -149);
      this.goodSteps = 0;
      return false;
    }
    this.goodSteps++;
    if (this.goodSteps >= this.growthInterval) {
      const grown = this.currentScale * this.growthFactor;
      // The scale multiplies a float32 loss: one above float32's range would turn every loss into Inf.
      if (Math.fround(grown) !== Infinity) this.currentScale = grown;
      this.goodSteps = 0;
    }
    return true;
  }

  state(): LossScalerState {
    return { scale: this.currentScale, goodSteps: this.goodSteps };
  }

  /** Restores a state() from a checkpoint; throws a RangeError naming the bad field. */
  load(state: unknown): void {
    const parsed = LossScalerStateSchema.safeParse(state);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new RangeError(`loss scaler state: ${issue.path.join('.') || '(root)'}: ${issue.message}`);
    }
    this.currentScale = parsed.data.scale;
    this.goodSteps = parsed.data.goodSteps;
  }
}

type Grads = readonly tf.Tensor[] | tf.NamedTensorMap;

function tensorsOf(grads: Grads): tf.Tensor[] {
  return Array.isArray(grads) ? [...grads] : Object.values(grads as tf.NamedTensorMap);
}

/**
 * 1 when every element of every tensor is finite, else 0: a float32 scalar computed where the tensors
 * are, with no read. The native ALL_FINITE kernel's flag where the backend has it (one pass over all
 * of them), else the total of sum(g*0) over the tensors compared with 0 (x*0 is 0 for finite x and NaN
 * for ±Inf and NaN, so the total is 0 or NaN and cannot overflow the way a plain sum of large finite
 * gradients could).
 */
export function finiteFlag(tensors: readonly tf.Tensor[]): tf.Scalar {
  if (tensors.length === 0) return tf.scalar(1);
  return tf.tidy(() => {
    if (canRunKernel(ALL_FINITE, ...tensors)) {
      const inputs = Object.fromEntries(tensors.map((g, i) => [`x${i}`, g]));
      return tf.cast(tf.engine().runKernel(ALL_FINITE, inputs) as tf.Scalar, 'float32');
    }
    return tf.cast(tf.equal(tf.addN(tensors.map((g) => tf.sum(tf.mul(g, 0)))), 0), 'float32') as tf.Scalar;
  });
}

/** True when every element of every gradient is finite: finiteFlag, read back (one synchronisation). */
export function gradsAreFinite(grads: Grads): boolean {
  const flag = finiteFlag(tensorsOf(grads));
  try {
    return flag.dataSync()[0] === 1;
  } finally {
    flag.dispose();
  }
}

/**
 * The gradients divided by `scale` (the scale the loss was multiplied by), as new tensors under the
 * same names; the caller disposes both maps. Multiplying by 1/scale is exact for a power-of-two scale.
 */
export function unscaleGrads(grads: tf.NamedTensorMap, scale: number): tf.NamedTensorMap {
  positiveFinite('scale', scale);
  const inv = 1 / scale;
  return tf.tidy(() => Object.fromEntries(Object.entries(grads).map(([name, g]) => [name, tf.mul(g, inv)])));
}
