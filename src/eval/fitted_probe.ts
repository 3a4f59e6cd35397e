/**
 * The classifier behind a linear result, as eval scored it on test: one probe (split protocol), or the
 * fold probes of leave-one-group-out, which vote by averaging their softmax probabilities. eval keeps
 * it beside its record (saved_probe.ts) and `simtrip predict` and `simtrip export --with-probe` use it
 * the same way.
 */
import { argmaxRows, softmaxRows, type LinearProbe } from './linear_probe.js';

/** How an ensemble's members are combined (logo), as results and saved probes name it. */
export const ENSEMBLE_COMBINE = 'mean of softmax probabilities';

export interface FittedMember {
  /** "probe" (split), "fold s2" (logo: the fold that held out group s2). */
  readonly name: string;
  readonly held_out_group?: string;
  /** Items the member was fitted on. */
  readonly fitted_on: number;
  readonly probe: LinearProbe;
}

export interface FittedProbe {
  readonly members: readonly FittedMember[];
}

/** Mean over the classifiers of their softmax probabilities on x: [n x numClasses], float64. */
export function averageProbabilities(probes: readonly LinearProbe[], x: Float32Array, numClasses: number): Float64Array {
  if (probes.length === 0) throw new RangeError('an ensemble needs at least one classifier');
  let sum: Float64Array | undefined;
  for (const probe of probes) {
    const p = softmaxRows(probe.logits(x), numClasses);
    if (!sum) sum = p;
    else for (let i = 0; i < p.length; i++) sum[i]! += p[i]!;
  }
  return sum!.map((v) => v / probes.length);
}

/** Class probabilities of features x [n x dim]: the softmax of one probe, the members' mean for an ensemble. */
export function fittedProbabilities(fitted: FittedProbe, x: Float32Array, numClasses: number): Float64Array {
  return averageProbabilities(
    fitted.members.map((m) => m.probe),
    x,
    numClasses,
  );
}

/**
 * The classes eval's metrics count: the argmax of one probe's logits (softmax does not change it), of
 * the mean probabilities for an ensemble; the lowest index on ties.
 */
export function fittedPredictions(fitted: FittedProbe, x: Float32Array, numClasses: number): Int32Array {
  if (fitted.members.length === 1) return fitted.members[0]!.probe.predict(x);
  return argmaxRows(fittedProbabilities(fitted, x, numClasses), numClasses);
}
