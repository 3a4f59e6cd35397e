/**
 * The tags simtrip writes to TensorBoard, in one place: a run's dashboards keep their layout from one
 * version to the next, and the tags group into TensorBoard's sections by their first path part.
 *
 * Scalars come from the records of metrics.jsonl (see scalarsOfMetricsRecord), so TensorBoard and
 * the metrics log always hold the same steps and values.
 */
import type { EvalResult } from '../../eval/protocols.js';
import { isLinear } from '../facts.js';
import type { MetricsRecord } from '../run_data.js';

export const TAGS = {
  loss: 'train/loss',
  /** Each loss term under its metrics.jsonl name (SimTriplet: train/loss_inter, train/loss_intra). */
  lossTerm: (name: string) => `train/${name}`,
  lr: 'train/lr',
  lrPredictor: 'train/lr_predictor',
  collapseStd: 'train/collapse_std',
  trainAccuracy: 'train/accuracy',
  epoch: 'train/epoch',
  knnAccuracy: 'monitor/knn_accuracy',
  imgPerS: 'perf/img_per_s',
  dataWaitMs: 'perf/data_wait_ms',
  lossScale: 'mixed16/loss_scale',
  skippedSteps: 'mixed16/skipped_steps',
  gpuMib: 'memory/gpu_mib',
  gpuPeakMib: 'memory/gpu_peak_mib',
  rssMib: 'memory/rss_mib',
  /** An epoch record's mean of a per-step number: epoch/loss, epoch/loss_inter, epoch/collapse_std. */
  epochMean: (key: string) => `epoch/${key}`,
  /** A probe's metric: probe/linear_10pct/balanced_accuracy, probe/knn/accuracy (result names: resultTagName). */
  probe: (result: string, metric: string) => `probe/${result}/${metric}`,
  /** Image: a grid of augmented views as training draws them. */
  views: 'views/train',
  /** Images of an evaluation; `scope` as evalScope gives it. */
  confusion: (result: string) => `eval/confusion/${result}`,
  umap: (scope = '') => `eval/umap${scope}`,
  neighbours: (scope = '') => `eval/neighbours${scope}`,
  /** Text: the resolved config (YAML) and run.json. */
  config: 'run/config',
  runInfo: 'run/run.json',
} as const;

/** metrics.jsonl keys of the train records and their tags; loss_* keys are loss terms. */
const TRAIN_KEYS: Record<string, string> = {
  loss: TAGS.loss,
  lr: TAGS.lr,
  lr_predictor: TAGS.lrPredictor,
  collapse_std: TAGS.collapseStd,
  train_accuracy: TAGS.trainAccuracy,
  epoch: TAGS.epoch,
  img_per_s: TAGS.imgPerS,
  data_wait_ms: TAGS.dataWaitMs,
  loss_scale: TAGS.lossScale,
  skipped_steps: TAGS.skippedSteps,
  gpu_mib: TAGS.gpuMib,
  gpu_peak_mib: TAGS.gpuPeakMib,
  rss_mib: TAGS.rssMib,
};

/** Keys that are not measurements: the step is the x axis, time is the wall time. */
const NOT_SCALARS = new Set(['kind', 'step', 'time']);

/** A train key's tag: the known ones above, loss terms, and any other number under train/. */
function trainTag(key: string): string {
  return TRAIN_KEYS[key] ?? (key.startsWith('loss_') ? TAGS.lossTerm(key) : `train/${key}`);
}

/** The numeric fields of a record under their tags (null, as JSON writes NaN, stays NaN). */
function numericFields(record: MetricsRecord, skip: ReadonlySet<string>, tag: (key: string) => string): Array<[string, number]> {
  const out: Array<[string, number]> = [];
  for (const [key, v] of Object.entries(record)) {
    if (skip.has(key)) continue;
    if (typeof v === 'number') out.push([tag(key), v]);
    else if (v === null) out.push([tag(key), Number.NaN]);
  }
  return out;
}

/** An epoch record's step and epoch number are its position, not one of its means. */
const NOT_EPOCH_MEANS = new Set([...NOT_SCALARS, 'epoch']);

/**
 * The scalars of one metrics.jsonl record, by tag. Train records give every numeric field; epoch
 * records their means under epoch/; kNN monitor records the accuracy. Other kinds give none.
 */
export function scalarsOfMetricsRecord(record: MetricsRecord): Array<[string, number]> {
  if (record.kind === 'knn') {
    const accuracy = record.accuracy;
    return typeof accuracy === 'number' || accuracy === null ? [[TAGS.knnAccuracy, accuracy ?? Number.NaN]] : [];
  }
  if (record.kind === 'epoch') return numericFields(record, NOT_EPOCH_MEANS, TAGS.epochMean);
  if (record.kind !== 'train') return [];
  return numericFields(record, NOT_SCALARS, trainTag);
}

/**
 * What tells one evaluation's tags from another's at the same step: '' for a checkpoint on its own
 * training data, else a suffix naming the encoder that is not a checkpoint (_random-init, _weights)
 * and the other data (_data-<hash of the data settings>). Probe results add _logo (a kNN result is
 * the split protocol's whatever the evaluation's protocol).
 */
export function evalScope(what: { encoder: 'checkpoint' | 'weights' | 'random-init'; otherData?: string; protocol?: 'split' | 'logo' }): string {
  const parts = [what.protocol === 'logo' ? 'logo' : '', what.encoder === 'checkpoint' ? '' : what.encoder, what.otherData ? `data-${what.otherData}` : ''];
  return parts.filter((p) => p).map((p) => `_${p}`).join('');
}

/** A result's name in tags: linear_10pct, linear_0.5pct, knn, then its scope (evalScope). */
export function resultTagName(r: EvalResult, scope = ''): string {
  return `${isLinear(r) ? `linear_${Number((r.label_fraction * 100).toPrecision(6))}pct` : 'knn'}${scope}`;
}

/** Accuracy, balanced accuracy and macro F1 of each probe result, each result under its name (resultTagName). */
export function scalarsOfEvalResults(results: readonly EvalResult[], names: (r: EvalResult) => string = (r) => resultTagName(r)): Array<[string, number]> {
  return results.flatMap((r) => {
    const name = names(r);
    return (['accuracy', 'balanced_accuracy', 'macro_f1'] as const).map((m) => [TAGS.probe(name, m), r.metrics[m]] as [string, number]);
  });
}
