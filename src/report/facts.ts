/**
 * The facts a report states about a run, pulled from its config, metrics log and eval reports: one
 * place, so the single-run summary and the comparison table cannot disagree.
 */
import { basename } from 'node:path';
import type { EvalReport } from '../eval/evaluate.js';
import type { EvalResult, KnnResult, LinearResult } from '../eval/protocols.js';
import { configValue, seriesFrom, valueOf, type MetricsRecord, type RunData } from './run_data.js';

/** Train-record fields with a chart of their own; loss_* fields are loss terms (drawn with the loss). */
const KNOWN_TRAIN_FIELDS = new Set(['kind', 'step', 'epoch', 'loss', 'lr', 'lr_predictor', 'collapse_std', 'img_per_s', 'time', 'loss_scale']);

const isTerm = (key: string) => key.startsWith('loss_') && key !== 'loss_scale';

/** Numeric fields of the train records in first-seen order, split into loss terms and everything else. */
export function extraTrainFields(train: readonly MetricsRecord[]): { terms: string[]; other: string[] } {
  const seen = new Set<string>();
  for (const r of train) {
    for (const [key, v] of Object.entries(r)) if (!KNOWN_TRAIN_FIELDS.has(key) && (typeof v === 'number' || v === null)) seen.add(key);
  }
  const keys = [...seen];
  return { terms: keys.filter(isTerm), other: keys.filter((k) => !isTerm(k)) };
}

export interface RunFacts {
  name: string;
  method: string;
  arch: string;
  data: string;
  /** Configured epochs and the last epoch the log reached. */
  epochs?: number;
  epochsDone?: number;
  steps?: number;
  /** The loss the report states: the mean over the last epoch (see finalLossOf). */
  finalLoss?: FinalLoss;
  finalKnn?: { accuracy: number; epoch: number };
  bestKnn?: { accuracy: number; epoch: number };
  finalLossScale?: number;
  medianImgPerS?: number;
}

function lastFinite(points: readonly (readonly [number, number])[]): number | undefined {
  for (let i = points.length - 1; i >= 0; i--) if (Number.isFinite(points[i]![1])) return points[i]![1];
  return undefined;
}

function median(values: number[]): number | undefined {
  if (values.length === 0) return undefined;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1]! + s[mid]!) / 2;
}

function describeArch(config: Record<string, unknown>): string {
  const arch = String(configValue(config, 'model.arch') ?? 'resnet18');
  const parts: string[] = [];
  const stem = configValue(config, 'model.stem');
  if (!arch.startsWith('bit-') && typeof stem === 'string') parts.push(`${stem} stem`);
  if (arch.startsWith('bit-')) parts.push(configValue(config, 'model.norm') === 'batch' ? 'BatchNorm' : 'GroupNorm');
  const width = configValue(config, 'model.width');
  if (typeof width === 'number' && width !== 64) parts.push(`width ${width}`);
  const weights = configValue(config, 'model.weights');
  if (typeof weights === 'string') parts.push(`from ${basename(weights)}`);
  return parts.length ? `${arch} (${parts.join(', ')})` : arch;
}

function describeData(run: RunData): string {
  if (typeof run.info?.data === 'string') return run.info.data;
  const kind = String(configValue(run.config, 'data.kind') ?? 'synthetic');
  const size = configValue(run.config, 'data.image_size');
  return typeof size === 'number' ? `${kind} ${size}px` : kind;
}

/** A run's final loss with its terms, and what it is the mean of. */
export interface FinalLoss {
  loss: number;
  terms: Record<string, number>;
  /** "epoch 4", or for logs without epoch records "the last logged window, steps 39–40". */
  over: string;
}

/**
 * The one loss a report calls final: the mean over the last epoch's steps (the figure the epoch
 * lines print). Logs written before epoch records existed give the last logged window's mean instead,
 * and say so.
 */
export function finalLossOf(metrics: RunData['metrics']): FinalLoss | undefined {
  const { terms } = extraTrainFields(metrics.train);
  const pick = (r: MetricsRecord) => Object.fromEntries(terms.map((t) => [t, valueOf(r, t)] as const).filter((e): e is [string, number] => e[1] !== undefined && Number.isFinite(e[1])));
  const epoch = [...metrics.epoch].reverse().find((r) => Number.isFinite(valueOf(r, 'loss') ?? Number.NaN));
  if (epoch) return { loss: valueOf(epoch, 'loss')!, terms: pick(epoch), over: `epoch ${valueOf(epoch, 'epoch') ?? '?'}` };
  const windows = [...metrics.train].sort((a, b) => (valueOf(a, 'step') ?? 0) - (valueOf(b, 'step') ?? 0));
  for (let i = windows.length - 1; i >= 0; i--) {
    const r = windows[i]!;
    const loss = valueOf(r, 'loss');
    if (loss === undefined || !Number.isFinite(loss)) continue;
    const to = valueOf(r, 'step')!;
    const from = i > 0 ? valueOf(windows[i - 1]!, 'step')! + 1 : 1;
    return { loss, terms: pick(r), over: `the last logged window, ${from === to ? `step ${to}` : `steps ${from}–${to}`}` };
  }
  return undefined;
}

export function runFacts(run: RunData): RunFacts {
  const { train, knn } = run.metrics;
  const loss = seriesFrom(train, 'step', 'loss');
  const knnPoints = seriesFrom(knn, 'epoch', 'accuracy').filter((p) => Number.isFinite(p[1]));
  const best = knnPoints.reduce<(typeof knnPoints)[number] | undefined>((b, p) => (!b || p[1] > b[1] ? p : b), undefined);
  const last = knnPoints.at(-1);
  const epochs = [...train, ...knn].map((r) => valueOf(r, 'epoch')).filter((e): e is number => e !== undefined && Number.isFinite(e));
  const configured = configValue(run.config, 'train.epochs');
  return {
    name: run.name,
    method: String(configValue(run.config, 'method.name') ?? 'simsiam'),
    arch: describeArch(run.config),
    data: describeData(run),
    epochs: typeof configured === 'number' ? configured : undefined,
    epochsDone: epochs.length ? Math.max(...epochs) : undefined,
    steps: loss.at(-1)?.[0],
    finalLoss: finalLossOf(run.metrics),
    finalKnn: last && { accuracy: last[1], epoch: last[0] },
    bestKnn: best && { accuracy: best[1], epoch: best[0] },
    finalLossScale: lastFinite(seriesFrom(train, 'step', 'loss_scale')),
    medianImgPerS: median(seriesFrom(train, 'step', 'img_per_s').map((p) => p[1]).filter(Number.isFinite)),
  };
}

export const isLinear = (r: EvalResult): r is LinearResult => r.classifier === 'linear';
export const isKnn = (r: EvalResult): r is KnnResult => r.classifier === 'knn';

/** Linear results ordered by label fraction. */
export function linearResults(report: Pick<EvalReport, 'results'>): LinearResult[] {
  return report.results.filter(isLinear).sort((a, b) => a.label_fraction - b.label_fraction);
}

/** The result a summary's per-class table shows: the linear probe with the most labels, else kNN. */
export function headlineResult(report: Pick<EvalReport, 'results'>): EvalResult | undefined {
  return linearResults(report).at(-1) ?? report.results[0];
}

/** "1%", "10%", "100%", "0.5%". */
export function fractionLabel(fraction: number): string {
  return `${Number((fraction * 100).toPrecision(6))}%`;
}

/** Short label of a result: "linear 10%" or "kNN". */
export function resultLabel(r: EvalResult): string {
  return isLinear(r) ? `linear ${fractionLabel(r.label_fraction)}` : 'kNN';
}

/**
 * What a reader must know before comparing the runs' loss curves: different methods have losses on
 * different scales (SimTriplet's adds two SimSiam-type terms). Undefined when all runs share a method.
 */
export function lossScaleNote(methods: readonly string[]): string | undefined {
  const distinct = [...new Set(methods)];
  if (distinct.length < 2) return undefined;
  if (distinct.includes('simtriplet') && distinct.includes('simsiam') && distinct.length === 2) {
    return "SimTriplet's loss adds two SimSiam-type terms (-2 to 0), SimSiam's is one (-1 to 0): compare shapes, not levels";
  }
  return `different methods (${distinct.join(', ')}) have losses on different scales: compare shapes, not levels`;
}
