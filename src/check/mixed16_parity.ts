/**
 * engine.precision mixed16 on one backend against another: the losses of a short run, and the loss
 * scaler's decisions (which steps it skipped, the scale at every step) when its first scale is so
 * large that the gradients overflow. Both runs start from the same seeded model and see the same
 * batches; only the engines differ.
 *
 * Why a tolerance at all: both engines round the same float32 values to the half grid, but their
 * float32 sums run in different orders (cuDNN/cuBLAS tiles against oneDNN's blocking), so now and
 * then a value sits within a float32 rounding of a half-rounding tie and lands one half-ulp (2^-11
 * relative) apart. Such flips are rare and do not grow on their own, but training amplifies any
 * difference over steps: two runs drift apart like any two float runs of a chaotic process. So the
 * losses of the engines' mixed16 runs must stay closer to each other than fp32 and mixed16 on the
 * reference engine are (the drift fp16 numerics cause by themselves), and the scaler's skip pattern
 * must match exactly (an overflow is far from a rounding question).
 */
import { tf } from '../engine/tf.js';
import { LossScaler } from '../optim/loss_scale.js';
import { trainStep } from '../train/step.js';
import { Rng } from '../util/rng.js';
import { buildStepModel, randomViews, type StepSpec } from './step_parity.js';

export interface RunRecord {
  losses: number[];
  skipped: boolean[];
  scales: number[];
}

/**
 * `steps` training steps on `backend`, a new batch each step: mixed16 with the scaler starting at
 * `initScale`, or fp32 when initScale is null (the yardstick: how far fp16 numerics alone move a run).
 */
export async function trainingRun(backend: string, spec: StepSpec, steps: number, initScale: number | null): Promise<RunRecord> {
  await tf.setBackend(backend);
  const { model, opt } = buildStepModel(spec, 11, initScale === null ? 'fp32' : 'mixed16');
  const scaler = initScale === null ? undefined : new LossScaler({ initScale });
  const rng = new Rng(`mixed16-run-${spec.label}`);
  const record: RunRecord = { losses: [], skipped: [], scales: [] };
  try {
    for (let s = 0; s < steps; s++) {
      const out = trainStep(model.method, model.store, opt, randomViews(rng, spec, 2), spec.side, () => 0.05, { scaler });
      record.losses.push(out.loss);
      record.skipped.push(out.skipped);
      record.scales.push(out.lossScale ?? NaN);
    }
  } finally {
    opt.dispose();
    model.store.dispose();
  }
  return record;
}

export interface RunComparison {
  /** Largest |loss difference| over the run. */
  worstLossDifference: number;
  /** Steps where one run skipped and the other did not, or the scales differ. */
  scalerMismatches: number[];
}

export function compareRuns(got: RunRecord, ref: RunRecord): RunComparison {
  let worst = 0;
  const mismatches: number[] = [];
  ref.losses.forEach((l, i) => {
    const g = got.losses[i]!;
    if (Number.isFinite(l) || Number.isFinite(g)) worst = Math.max(worst, Math.abs(g - l));
    if (got.skipped[i] !== ref.skipped[i] || got.scales[i] !== ref.scales[i]) mismatches.push(i);
  });
  return { worstLossDifference: worst, scalerMismatches: mismatches };
}
