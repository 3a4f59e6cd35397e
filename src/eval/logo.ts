/**
 * SimTriplet's evaluation: leave-one-group-out cross-validation over the labelled groups (slides),
 * then the ensemble of the fold classifiers on a held-out group.
 *
 * For each group g a probe is fitted on every other group (the label fraction drawn from those items)
 * and scored on g; the fold scores give the cross-validation mean and std. On the test data the fold
 * classifiers vote by averaging their softmax probabilities, and the argmax is the ensemble's answer.
 */
import type { LinearProbe } from './linear_probe.js';
import { argmaxRows, probeProtocol, softmaxRows, takeRows } from './linear_probe.js';
import { classificationMetrics, HEADLINE_METRICS, meanStd, type MeanStd, type MetricSummary } from './metrics.js';
import {
  classCounts,
  fitProbe,
  fractionRows,
  groupName,
  labelledGroups,
  labelledPart,
  labelledRows,
  resolveProtocol,
  takeLabels,
  type FoldResult,
  type LinearResult,
  type ProbeData,
  type ProtocolOptions,
} from './protocols.js';

/** What one fold fitted on and scored on, for callers that audit the folds (tests, debugging). */
export interface FoldInfo {
  group: number;
  /** Rows of the training set the fold's probe was fitted on. */
  trainRows: Int32Array;
  /** Rows of the training set in the left-out group. */
  heldOutRows: Int32Array;
  probe: LinearProbe;
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

function foldSummary(folds: readonly FoldResult[]): Record<keyof MetricSummary, MeanStd> {
  const entries = HEADLINE_METRICS.map((key) => [key, meanStd(folds.map((f) => f.metrics[key]))] as const);
  return Object.fromEntries(entries) as Record<keyof MetricSummary, MeanStd>;
}

export function logoProbe(data: ProbeData, fraction: number, opts: ProtocolOptions, onFold?: (fold: FoldInfo) => void): LinearResult {
  // Throws the user-facing error when there are fewer than two labelled groups.
  resolveProtocol('logo', data.train);
  const train = data.train;
  const test = labelledPart(data.test, data.dim);
  const k = data.classNames.length;
  const cfg = { ...opts.cfg, label_fraction: fraction };
  const labelled = labelledRows(train.y);
  const used = new Uint8Array(train.y.length);
  const folds: FoldResult[] = [];
  const probes: LinearProbe[] = [];
  for (const g of labelledGroups(train)) {
    const inGroup = (i: number) => train.groups![i] === g;
    const heldOutRows = labelled.filter(inGroup);
    const foldPool = labelled.filter((i) => !inGroup(i));
    const trainRows = fractionRows(train.y, foldPool, fraction, opts.seed);
    const probe = fitProbe(train, trainRows, data, cfg, opts, `linear ${fraction} fold ${groupName(train, g)}`);
    trainRows.forEach((i) => (used[i] = 1));
    const heldOutPred = probe.predict(takeRows(train.x, data.dim, heldOutRows));
    folds.push({
      group: groupName(train, g),
      train_samples: trainRows.length,
      test_samples: heldOutRows.length,
      class_counts: classCounts(train.y, foldPool, trainRows, data.classNames),
      metrics: classificationMetrics(takeLabels(train.y, heldOutRows), heldOutPred, data.classNames),
    });
    probes.push(probe);
    onFold?.({ group: g, trainRows, heldOutRows, probe });
  }
  const pred = argmaxRows(averageProbabilities(probes, test.x, k), k);
  return {
    classifier: 'linear',
    protocol: 'logo',
    label_fraction: fraction,
    settings: probeProtocol(cfg, used.reduce((a, b) => a + b, 0), test.y.length),
    class_counts: classCounts(train.y, labelled, labelled.filter((i) => used[i] === 1), data.classNames),
    metrics: classificationMetrics(test.y, pred, data.classNames),
    folds,
    fold_summary: foldSummary(folds),
    ensemble: { members: probes.length, combine: 'mean of softmax probabilities' },
  };
}
