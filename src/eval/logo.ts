/**
 * SimTriplet's evaluation: leave-one-group-out cross-validation over the labelled groups (slides),
 * then the ensemble of the fold classifiers on a held-out group.
 *
 * For each group g a probe is fitted on every other group (the label fraction drawn from those items)
 * and scored on g; the fold scores give the cross-validation mean and std. On the test data the fold
 * classifiers vote by averaging their softmax probabilities, and the argmax is the ensemble's answer.
 */
import type { LinearProbe } from './linear_probe.js';
import { probeProtocol, takeRows } from './linear_probe.js';
import { ENSEMBLE_COMBINE, fittedPredictions, type FittedMember, type FittedProbe } from './fitted_probe.js';
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
  type FittedResult,
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

function foldSummary(folds: readonly FoldResult[]): Record<keyof MetricSummary, MeanStd> {
  const entries = HEADLINE_METRICS.map((key) => [key, meanStd(folds.map((f) => f.metrics[key]))] as const);
  return Object.fromEntries(entries) as Record<keyof MetricSummary, MeanStd>;
}

export function logoProbe(data: ProbeData, fraction: number, opts: ProtocolOptions, onFold?: (fold: FoldInfo) => void): LinearResult {
  return fitLogoProbe(data, fraction, opts, onFold).result;
}

/** logoProbe, with the fold probes whose ensemble it reports on test. */
export function fitLogoProbe(data: ProbeData, fraction: number, opts: ProtocolOptions, onFold?: (fold: FoldInfo) => void): FittedResult {
  // Throws the user-facing error when there are fewer than two labelled groups.
  resolveProtocol('logo', data.train);
  const train = data.train;
  const test = labelledPart(data.test, data.dim);
  const k = data.classNames.length;
  const cfg = { ...opts.cfg, label_fraction: fraction };
  const labelled = labelledRows(train.y);
  const used = new Uint8Array(train.y.length);
  const folds: FoldResult[] = [];
  const members: FittedMember[] = [];
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
    members.push({ name: `fold ${groupName(train, g)}`, held_out_group: groupName(train, g), fitted_on: trainRows.length, probe });
    onFold?.({ group: g, trainRows, heldOutRows, probe });
  }
  const fitted: FittedProbe = { members };
  const pred = fittedPredictions(fitted, test.x, k);
  const result: LinearResult = {
    classifier: 'linear',
    protocol: 'logo',
    label_fraction: fraction,
    settings: probeProtocol(cfg, used.reduce((a, b) => a + b, 0), test.y.length),
    class_counts: classCounts(train.y, labelled, labelled.filter((i) => used[i] === 1), data.classNames),
    metrics: classificationMetrics(test.y, pred, data.classNames),
    folds,
    fold_summary: foldSummary(folds),
    ensemble: { members: members.length, combine: ENSEMBLE_COMBINE },
  };
  return { result, probe: fitted };
}
