/**
 * Learning-rate schedule, stepped per iteration: linear warm-up (the medical SimSiam repos) then
 * cosine decay to 0 (official SimSiam, whose warm-up is 0). lr0 = base_lr * batch / 256.
 */
export interface ScheduleSpec {
  baseLr: number;
  batchSize: number;
  warmupEpochs: number;
  epochs: number;
  stepsPerEpoch: number;
}

export function initialLr(spec: Pick<ScheduleSpec, 'baseLr' | 'batchSize'>): number {
  return (spec.baseLr * spec.batchSize) / 256;
}

/** lr at a 0-based global step. */
export function learningRate(spec: ScheduleSpec, step: number): number {
  const lr0 = initialLr(spec);
  const total = spec.epochs * spec.stepsPerEpoch;
  const warm = Math.round(spec.warmupEpochs * spec.stepsPerEpoch);
  if (step < warm) return (lr0 * (step + 1)) / warm;
  const t = (step - warm) / Math.max(total - warm, 1);
  return lr0 * 0.5 * (1 + Math.cos(Math.PI * Math.min(t, 1)));
}
