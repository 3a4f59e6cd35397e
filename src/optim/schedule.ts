/**
 * Learning-rate schedule, stepped per iteration: linear warm-up (the medical SimSiam repos, BiT) then
 * either cosine decay to 0 (official SimSiam, whose warm-up is 0) or BiT-HyperRule's steps (x0.1 at
 * 30, 60 and 90 % of all steps). lr0 = base_lr * batch / batchRef, batchRef 256 by default (SimSiam's
 * linear scaling rule; BiT-HyperRule's is 512).
 */
export type DecayKind = 'cosine' | 'steps';

export interface ScheduleSpec {
  baseLr: number;
  batchSize: number;
  /** The batch size at which lr0 = baseLr (default 256). */
  batchRef?: number;
  warmupEpochs: number;
  epochs: number;
  stepsPerEpoch: number;
  /** What follows the warm-up (default cosine). */
  decay?: DecayKind;
}

/** Fractions of all steps where the 'steps' decay multiplies the lr by 0.1 (BiT's 3000/6000/9000 of 10000). */
export const STEP_DECAY_AT = [0.3, 0.6, 0.9] as const;

export function initialLr(spec: Pick<ScheduleSpec, 'baseLr' | 'batchSize' | 'batchRef'>): number {
  return (spec.baseLr * spec.batchSize) / (spec.batchRef ?? 256);
}

/** lr at a 0-based global step. */
export function learningRate(spec: ScheduleSpec, step: number): number {
  const lr0 = initialLr(spec);
  const total = spec.epochs * spec.stepsPerEpoch;
  const warm = Math.round(spec.warmupEpochs * spec.stepsPerEpoch);
  if (step < warm) return (lr0 * (step + 1)) / warm;
  if (spec.decay === 'steps') {
    // Boundaries count from step 0 (warm-up included), as BiT's schedule does.
    const passed = STEP_DECAY_AT.filter((f) => step >= Math.round(f * total)).length;
    return lr0 * 0.1 ** passed;
  }
  const t = (step - warm) / Math.max(total - warm, 1);
  return lr0 * 0.5 * (1 + Math.cos(Math.PI * Math.min(t, 1)));
}
