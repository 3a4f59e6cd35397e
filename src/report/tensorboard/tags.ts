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
  /** A probe's metric: probe/linear_10pct/balanced_accuracy, probe/knn/accuracy. */
  probe: (result: string, metric: string) => `probe/${result}/${metric}`,
  /** Image: a grid of augmented views as training draws them. */
  views: 'views/train',
  /** Images of an evaluation. */
  confusion: (result: string) => `eval/confusion/${result}`,
  umap: 'eval/umap',
  neighbours: 'eval/neighbours',
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

/**
 * The scalars of one metrics.jsonl record, by tag. Train records give every numeric field (null, as
 * JSON writes NaN, stays NaN); kNN monitor records give the accuracy. Other kinds give none.
 */
export function scalarsOfMetricsRecord(record: MetricsRecord): Array<[string, number]> {
  if (record.kind === 'knn') {
    const accuracy = record.accuracy;
    return typeof accuracy === 'number' || accuracy === null ? [[TAGS.knnAccuracy, accuracy ?? Number.NaN]] : [];
  }
  if (record.kind !== 'train') return [];
  const out: Array<[string, number]> = [];
  for (const [key, v] of Object.entries(record)) {
    if (NOT_SCALARS.has(key)) continue;
    if (typeof v === 'number') out.push([trainTag(key), v]);
    else if (v === null) out.push([trainTag(key), Number.NaN]);
  }
  return out;
}

/** A result's name in tags: linear_10pct, linear_0.5pct, knn. */
export function resultTagName(r: EvalResult): string {
  return isLinear(r) ? `linear_${Number((r.label_fraction * 100).toPrecision(6))}pct` : 'knn';
}

/** Accuracy, balanced accuracy and macro F1 of each probe result. */
export function scalarsOfEvalResults(results: readonly EvalResult[]): Array<[string, number]> {
  return results.flatMap((r) => {
    const name = resultTagName(r);
    return (['accuracy', 'balanced_accuracy', 'macro_f1'] as const).map((m) => [TAGS.probe(name, m), r.metrics[m]] as [string, number]);
  });
}
