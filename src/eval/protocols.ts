/**
 * Evaluation protocols on pre-extracted features, and the result records `eval.json` holds.
 *
 * - 'split': fit on the labelled training data, report on test. With a validation split (HAM10000) the
 *   probe's lr (a small grid) and epoch are chosen by validation balanced accuracy first, so the test
 *   set is touched once, by the chosen probe.
 * - 'logo' (SimTriplet): leave-one-group-out folds over the labelled groups, then the ensemble of the
 *   fold classifiers on the held-out test data; see logo.ts.
 *
 * Label fractions apply inside every protocol: the subset is drawn from what a probe is fitted on.
 */
import type { EvalConfig, LinearEvalConfig } from '../config/schema.js';
import { UserError } from '../util/errors.js';
import type { FittedProbe } from './fitted_probe.js';
import { knnClassify } from './knn.js';
import { stratifiedSubset } from './label_fraction.js';
import { probeLr, probeProtocol, takeRows, trainLinearProbe, type EpochInfo, type LinearProbe, type ProbeKernel, type ProbeProtocol } from './linear_probe.js';
import { classificationMetrics, summarizeMetrics, type ClassificationMetrics, type MeanStd, type MetricSummary } from './metrics.js';

export type ProtocolName = 'split' | 'logo';

/** Features [n x dim] of one split with their labels (-1: unlabelled) and groups (slide, patient). */
export interface FeatureSet {
  x: Float32Array;
  y: Int32Array;
  groups?: Int32Array;
  groupNames?: readonly string[];
}

export interface ProbeData {
  dim: number;
  classNames: readonly string[];
  /** What probes are fitted on (and, for logo, folded over). */
  train: FeatureSet;
  /** Model selection for the split protocol. */
  val?: FeatureSet;
  test: FeatureSet;
}

/** How the split protocol chose its probe. */
export interface ValSelection {
  metric: 'balanced_accuracy';
  val_samples: number;
  /** The best epoch of each lr tried, in grid order. */
  candidates: Array<{ base_lr: number; lr: number; best_epoch: number; val: MetricSummary }>;
  chosen: { base_lr: number; lr: number; epoch: number };
  /** Validation scores of the chosen probe. */
  val: MetricSummary;
}

/**
 * Labelled items per class (by class name): `available` to fit on, and `fitted`, the stratified
 * label-fraction subset the probe was fitted on (at least one of every available class).
 */
export interface ClassCounts {
  available: Record<string, number>;
  fitted: Record<string, number>;
}

export interface FoldResult {
  /** The group left out of this fold's training and scored on. */
  group: string;
  train_samples: number;
  test_samples: number;
  class_counts?: ClassCounts;
  metrics: ClassificationMetrics;
}

export interface LinearResult {
  classifier: 'linear';
  protocol: ProtocolName;
  label_fraction: number;
  /**
   * The probe's settings. train_samples: items fitted on (logo: distinct items any fold fitted on);
   * test_samples: items the reported metrics are on.
   */
  settings: ProbeProtocol;
  /** Per class: what the probe could fit on and what it did (logo: over all folds, distinct items). */
  class_counts?: ClassCounts;
  /** On the test data: the chosen probe (split) or the fold classifiers' ensemble (logo). */
  metrics: ClassificationMetrics;
  selection?: ValSelection;
  folds?: FoldResult[];
  /** Mean and std over the folds' held-out-group scores. */
  fold_summary?: Record<keyof MetricSummary, MeanStd>;
  /** logo: how the fold classifiers were combined on test. */
  ensemble?: { members: number; combine: 'mean of softmax probabilities' };
}

export interface KnnResult {
  classifier: 'knn';
  protocol: 'split';
  settings: { k: number; t: number; train_samples: number; test_samples: number };
  /** Per class: the labelled training items, all of them in the memory bank. */
  class_counts?: ClassCounts;
  metrics: ClassificationMetrics;
}

export type EvalResult = LinearResult | KnnResult;

/** A linear result with the classifier that produced its test metrics, for keeping (see saved_probe.ts). */
export interface FittedResult {
  result: LinearResult;
  probe: FittedProbe;
}

/** Progress hooks for one probe (a bar in the CLI). */
export interface ProbeProgress {
  onEpoch(info: EpochInfo): void;
  finish(): void;
}

export interface ProtocolOptions {
  cfg: LinearEvalConfig;
  seed: number;
  kernel?: ProbeKernel;
  /** Called once per probe trained, with a label such as "linear 0.1 lr 0.03" or "linear 0.1 fold s2". */
  progress?: (label: string, epochs: number) => ProbeProgress;
}

/** Row indices with a known label (-1 marks unlabelled items, which no probe fits or scores on). */
export function labelledRows(y: Int32Array): Int32Array {
  const rows: number[] = [];
  y.forEach((label, i) => {
    if (label >= 0) rows.push(i);
  });
  return Int32Array.from(rows);
}

export function takeLabels(y: Int32Array, rows: Int32Array): Int32Array {
  return rows.map((i) => y[i]!);
}

/** The same set restricted to its labelled rows (the whole set when every row is labelled). */
export function labelledPart(set: FeatureSet, dim: number): FeatureSet {
  const rows = labelledRows(set.y);
  if (rows.length === set.y.length) return set;
  return { x: takeRows(set.x, dim, rows), y: takeLabels(set.y, rows), groups: set.groups && takeLabels(set.groups, rows), groupNames: set.groupNames };
}

/** Distinct groups of the labelled items, ascending. */
export function labelledGroups(set: Pick<FeatureSet, 'y' | 'groups'>): number[] {
  if (!set.groups) return [];
  const seen = new Set<number>();
  set.y.forEach((label, i) => {
    if (label >= 0) seen.add(set.groups![i]!);
  });
  return [...seen].sort((a, b) => a - b);
}

export function groupName(set: Pick<FeatureSet, 'groupNames'>, group: number): string {
  return set.groupNames?.[group] ?? `group ${group}`;
}

/**
 * 'auto' means logo when the labelled data has at least two groups, split otherwise. An explicit
 * 'logo' on data without two groups is an error the user must fix (data or eval.protocol).
 */
export function resolveProtocol(requested: EvalConfig['protocol'], train: Pick<FeatureSet, 'y' | 'groups'>, description = 'the labelled training data'): ProtocolName {
  const groups = labelledGroups(train).length;
  if (requested === 'split') return 'split';
  if (requested === 'logo' && groups < 2) {
    const found = train.groups ? `${groups} group${groups === 1 ? '' : 's'}` : 'no groups';
    throw new UserError(
      `eval.protocol: 'logo' needs labelled data in at least 2 groups (slides or patients) to leave one out, but ${description} has ${found}; use data.kind folder with <root>/<group>/<class>/ or eval.protocol: split`,
    );
  }
  return groups >= 2 ? 'logo' : 'split';
}

/** lr_grid, else base_lr x 0.1, 1, 10: a decade either side of the configured value. */
export function lrGrid(cfg: LinearEvalConfig): number[] {
  // toPrecision: 0.1 x 0.1 is 0.010000000000000002, which reports would then print.
  return cfg.lr_grid ?? [0.1, 1, 10].map((m) => Number((cfg.base_lr * m).toPrecision(12)));
}

/** Validation balanced accuracy decides; macro F1 breaks its ties. */
function beats(a: MetricSummary, b: MetricSummary): boolean {
  if (a.balanced_accuracy !== b.balanced_accuracy) return a.balanced_accuracy > b.balanced_accuracy;
  return a.macro_f1 > b.macro_f1;
}

function sameScore(a: MetricSummary, b: MetricSummary): boolean {
  return a.balanced_accuracy === b.balanced_accuracy && a.macro_f1 === b.macro_f1;
}

/** Fits one probe on the given rows of `set`, with a progress bar when the caller wants one. */
export function fitProbe(
  set: FeatureSet,
  rows: Int32Array,
  data: Pick<ProbeData, 'dim' | 'classNames'>,
  cfg: LinearEvalConfig,
  opts: ProtocolOptions,
  label: string,
  onSnapshot?: (epoch: number, probe: LinearProbe) => void,
): LinearProbe {
  const bar = opts.progress?.(label, cfg.epochs);
  try {
    return trainLinearProbe(takeRows(set.x, data.dim, rows), takeLabels(set.y, rows), data.dim, data.classNames.length, cfg, opts.seed, {
      kernel: opts.kernel,
      onEpoch: bar && ((e) => bar.onEpoch(e)),
      onSnapshot,
    });
  } finally {
    bar?.finish();
  }
}

/** Items per class name among `rows` of labels `y`. */
export function countByClass(y: Int32Array, rows: ArrayLike<number>, classNames: readonly string[]): Record<string, number> {
  const n = new Array<number>(classNames.length).fill(0);
  for (let i = 0; i < rows.length; i++) n[y[rows[i]!]!]!++;
  return Object.fromEntries(classNames.map((name, c) => [name, n[c]!]));
}

export function classCounts(y: Int32Array, available: ArrayLike<number>, fitted: ArrayLike<number>, classNames: readonly string[]): ClassCounts {
  return { available: countByClass(y, available, classNames), fitted: countByClass(y, fitted, classNames) };
}

/** Rows of the stratified label-fraction subset of `rows` (indices into the same set). */
export function fractionRows(y: Int32Array, rows: Int32Array, fraction: number, seed: number): Int32Array {
  return stratifiedSubset(takeLabels(y, rows), fraction, seed).map((j) => rows[j]!);
}

/**
 * Split protocol at one label fraction. Without validation data the probe trains for the configured
 * schedule and is scored on test. With it, every lr of the grid trains for the full schedule, each
 * epoch is scored on validation, and the best (lr, epoch) is the probe reported on test. Ties go to the
 * later epoch (the longer-trained probe) and to the earlier lr in the grid.
 */
export function splitProbe(data: ProbeData, fraction: number, opts: ProtocolOptions): LinearResult {
  return fitSplitProbe(data, fraction, opts).result;
}

/** splitProbe, with the probe it reports on test. */
export function fitSplitProbe(data: ProbeData, fraction: number, opts: ProtocolOptions): FittedResult {
  const train = labelledPart(data.train, data.dim);
  const test = labelledPart(data.test, data.dim);
  const available = labelledRows(train.y);
  const rows = fractionRows(train.y, available, fraction, opts.seed);
  const counts = classCounts(train.y, available, rows, data.classNames);
  const base = { ...opts.cfg, label_fraction: fraction };
  const nTest = test.y.length;
  const score = (set: FeatureSet, probe: LinearProbe) => classificationMetrics(set.y, probe.predict(set.x), data.classNames);

  if (!data.val) {
    const probe = fitProbe(train, rows, data, base, opts, `linear ${fraction}`);
    return {
      result: { classifier: 'linear', protocol: 'split', label_fraction: fraction, settings: probeProtocol(base, rows.length, nTest), class_counts: counts, metrics: score(test, probe) },
      probe: { members: [{ name: 'probe', fitted_on: rows.length, probe }] },
    };
  }

  const val = labelledPart(data.val, data.dim);
  if (val.y.length === 0) throw new UserError('the validation split has no labelled items to select the probe with');
  let best: { probe: LinearProbe; cfg: LinearEvalConfig; epoch: number; val: MetricSummary } | undefined;
  const candidates: ValSelection['candidates'] = [];
  for (const base_lr of lrGrid(base)) {
    const cfg = { ...base, base_lr };
    let runBest: { probe: LinearProbe; epoch: number; val: MetricSummary } | undefined;
    fitProbe(train, rows, data, cfg, opts, `linear ${fraction} lr ${base_lr}`, (epoch, probe) => {
      const v = summarizeMetrics(score(val, probe));
      if (!runBest || beats(v, runBest.val) || sameScore(v, runBest.val)) runBest = { probe, epoch, val: v };
    });
    candidates.push({ base_lr, lr: probeLr(cfg), best_epoch: runBest!.epoch, val: runBest!.val });
    if (!best || beats(runBest!.val, best.val)) best = { ...runBest!, cfg };
  }
  const chosen = best!;
  const result: LinearResult = {
    classifier: 'linear',
    protocol: 'split',
    label_fraction: fraction,
    settings: probeProtocol(chosen.cfg, rows.length, nTest),
    class_counts: counts,
    metrics: score(test, chosen.probe),
    selection: {
      metric: 'balanced_accuracy',
      val_samples: val.y.length,
      candidates,
      chosen: { base_lr: chosen.cfg.base_lr, lr: probeLr(chosen.cfg), epoch: chosen.epoch },
      val: chosen.val,
    },
  };
  return { result, probe: { members: [{ name: 'probe', fitted_on: rows.length, probe: chosen.probe }] } };
}

/** Weighted kNN fitted on every labelled training item, scored on test. */
export function knnProbe(data: ProbeData, k: number, t: number): KnnResult {
  const train = labelledPart(data.train, data.dim);
  const test = labelledPart(data.test, data.dim);
  const pred = knnClassify(train.x, train.y, test.x, data.dim, data.classNames.length, k, t);
  return {
    classifier: 'knn',
    protocol: 'split',
    settings: { k, t, train_samples: train.y.length, test_samples: test.y.length },
    class_counts: classCounts(train.y, labelledRows(train.y), labelledRows(train.y), data.classNames),
    metrics: classificationMetrics(test.y, pred, data.classNames),
  };
}
