/**
 * A run's report: `<run>/report/` with PNG charts (each beside its SVG) and summary.md. Training
 * writes it at its end and `simtrip eval` refreshes it after keeping its records, so it always shows
 * every record (and only their charts); `simtrip report RUN_DIR` rewrites it on demand.
 */
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../io/atomic.js';
import { lineChartSvg, PALETTE, smoothSeries, type Point, type Series } from './chart.js';
import type { EvalResult } from '../eval/protocols.js';
import { confusionChartName, type RunEval } from './eval_groups.js';
import { extraTrainFields, isKnn, linearResults, resultLabel } from './facts.js';
import { confusionHeatmapSvg } from './heatmap.js';
import { svgTextRenders, writeChart } from './png.js';
import { configValue, readRun, seriesFrom, type RunData, type RunMetrics } from './run_data.js';
import { runSummaryMarkdown } from './summary.js';

/** A chart of the report: file-name stem, title (the link text in summary.md) and SVG. */
export interface Chart {
  name: string;
  title: string;
  svg: string;
}

/** From this many points on, a noisy per-step curve gets a smoothed trend drawn over it. */
const SMOOTH_FROM = 50;

const smooth = (points: Point[]): Point[] => smoothSeries(points, Math.ceil(points.length / 100));

/** The loss and its terms: the raw loss faint under its trend once there are many points; terms as trends. */
export function lossSeries(metrics: RunMetrics, x = (step: number) => step): Series[] {
  const at = (key: string) => seriesFrom(metrics.train, 'step', key).map(([s, y]) => [x(s), y] as const);
  const loss = at('loss');
  const many = loss.length >= SMOOTH_FROM;
  const series: Series[] = many
    ? [
        { name: 'loss', points: loss, faint: true, color: PALETTE[0] },
        { name: 'loss (smoothed)', points: smooth(loss), color: PALETTE[0] },
      ]
    : [{ name: 'loss', points: loss, color: PALETTE[0] }];
  extraTrainFields(metrics.train).terms.forEach((term, i) => {
    const points = at(term);
    series.push({ name: term, points: many ? smooth(points) : points, color: PALETTE[(i + 1) % PALETTE.length] });
  });
  return series;
}

/** Training curves: loss and terms, lr, loss scale, collapse std, kNN accuracy, any other logged number. */
export function trainingCharts(metrics: RunMetrics, projDim?: number): Chart[] {
  const { train, knn } = metrics;
  const charts: Chart[] = [];
  const line = (name: string, title: string, opts: Parameters<typeof lineChartSvg>[0]) => charts.push({ name, title, svg: lineChartSvg(opts) });
  const terms = extraTrainFields(train);
  const lossTitle = terms.terms.length ? 'Training loss and its terms' : 'Training loss';
  line('loss', lossTitle, { title: lossTitle, xLabel: 'step', yLabel: 'loss', series: lossSeries(metrics), integerX: true });
  // The predictor's lr (SimSiam's fix_pred_lr keeps it at lr0) beside the backbone's, when logged.
  const predictorLr = seriesFrom(train, 'step', 'lr_predictor');
  const lrs: Series[] = predictorLr.length > 0
    ? [{ name: 'backbone and projector', points: seriesFrom(train, 'step', 'lr') }, { name: 'predictor', points: predictorLr }]
    : [{ name: 'lr', points: seriesFrom(train, 'step', 'lr') }];
  // Headroom above the peak: a constant predictor lr (or the schedule's peak) must not sit on the frame.
  const peak = lrs.reduce((m, x) => x.points.reduce((a, p) => (Number.isFinite(p[1]) ? Math.max(a, p[1]) : a), m), 0);
  line('lr', 'Learning rate', { title: 'Learning rate', xLabel: 'step', yLabel: 'lr', series: lrs, integerX: true, includeY: [0, 1.08 * peak] });
  const scale = seriesFrom(train, 'step', 'loss_scale');
  if (scale.length > 0) {
    // Powers of two that halve and double: a log axis shows each change as the same step.
    line('loss_scale', 'Loss scale (mixed16)', { title: 'Loss scale (mixed16)', xLabel: 'step', yLabel: 'loss scale', series: [{ name: 'loss scale', points: scale }], integerX: true, logY: true });
  }
  const collapse = seriesFrom(train, 'step', 'collapse_std');
  if (collapse.length > 0) {
    const refs = projDim !== undefined && projDim > 0 ? [{ y: 1 / Math.sqrt(projDim), label: `1/sqrt(${projDim})` }] : [];
    const title = 'Std of normalised output (collapse check)';
    line('collapse', title, { title, xLabel: 'step', yLabel: 'std', series: [{ name: 'collapse std', points: collapse }], referenceLines: refs, integerX: true });
  }
  const accuracy = seriesFrom(knn, 'epoch', 'accuracy');
  if (accuracy.length > 0) {
    line('knn', 'kNN monitor accuracy', { title: 'kNN monitor accuracy', xLabel: 'epoch', yLabel: 'accuracy', series: [{ name: 'kNN accuracy', points: accuracy }], integerX: true, includeY: [0, 1], legendBottom: true });
  }
  const drawn = new Set<string>();
  for (const field of terms.other) {
    if (drawn.has(field)) continue;
    const spec = fieldChart(field, terms.other);
    spec.fields.forEach((f) => drawn.add(f));
    const series = spec.fields.map((f) => ({ name: FIELD_CHARTS[f]?.series ?? f.replace(/_/g, ' '), points: seriesFrom(train, 'step', f) }));
    line(`train-${field}`, spec.title, { title: spec.title, xLabel: 'step', yLabel: spec.yLabel, series, integerX: true, ...(spec.includeY ? { includeY: spec.includeY } : {}) });
  }
  return charts;
}

/** How the other numbers of metrics.jsonl are charted: a title and axis a reader understands. */
interface FieldChart {
  title: string;
  yLabel: string;
  /** Series name in a chart shared with other fields. */
  series?: string;
  /** Fields drawn in the same chart (e.g. GPU memory now and its peak). */
  with?: string[];
  includeY?: number[];
}

const FIELD_CHARTS: Record<string, FieldChart> = {
  skipped_steps: { title: 'Skipped steps (mixed16 overflows, cumulative)', yLabel: 'steps skipped so far', includeY: [0] },
  train_accuracy: { title: 'Training accuracy (supervised, per batch)', yLabel: 'accuracy', includeY: [0, 1] },
  gpu_mib: { title: 'GPU memory', yLabel: 'MiB', series: 'in use', with: ['gpu_peak_mib'], includeY: [0] },
  gpu_peak_mib: { title: 'GPU memory', yLabel: 'MiB', series: 'peak so far', with: ['gpu_mib'], includeY: [0] },
  rss_mib: { title: 'Process memory (resident set)', yLabel: 'MiB', includeY: [0] },
  data_wait_ms: { title: 'Data wait per step (augmentation not ready)', yLabel: 'ms', includeY: [0] },
};

/** A field's chart; a field simtrip does not know gets its name in words ("foo_bar" is "Foo bar"). */
function fieldChart(field: string, present: readonly string[]): FieldChart & { fields: string[] } {
  const known = FIELD_CHARTS[field];
  if (known) return { ...known, fields: [field, ...(known.with ?? []).filter((f) => present.includes(f))].sort((a, b) => present.indexOf(a) - present.indexOf(b)) };
  const words = field.replace(/_/g, ' ');
  return { title: words.charAt(0).toUpperCase() + words.slice(1), yLabel: words, fields: [field] };
}

/** Balanced accuracy and macro F1 of a group's linear probes against the label fraction; kNN as a reference. */
export function labelFractionChart(group: RunEval): Chart | undefined {
  const { report } = group;
  const linear = linearResults(report);
  if (linear.length === 0) return undefined;
  const knn = report.results.find(isKnn);
  const title = `Linear probe vs label fraction (${report.protocol})`;
  const svg = lineChartSvg({
    title,
    xLabel: 'label fraction',
    yLabel: 'score',
    series: [
      { name: 'balanced accuracy', points: linear.map((r) => [r.label_fraction, r.metrics.balanced_accuracy] as const), markers: true },
      { name: 'macro F1', points: linear.map((r) => [r.label_fraction, r.metrics.macro_f1] as const), markers: true },
    ],
    referenceLines: knn ? [{ y: knn.metrics.balanced_accuracy, label: 'kNN balanced accuracy (all labels)' }] : [],
    logX: true,
    includeY: [0, 1], legendBottom: true,
  });
  return { name: `label_fraction-${group.id}`, title: `${title}: ${group.title}`, svg };
}

/** A result's confusion matrix on test as a heat map: its title and SVG. */
export function confusionSvg(r: EvalResult, classNames: readonly string[]): { title: string; svg: string } {
  const title = `Confusion matrix: ${resultLabel(r)} (${r.protocol}${r.protocol === 'logo' && !isKnn(r) ? ', fold ensemble' : ''}, test)`;
  return { title, svg: confusionHeatmapSvg({ title, classNames, matrix: r.metrics.confusion_matrix }) };
}

/** One heat map per result of a group (per record). */
export function confusionCharts(group: RunEval): Chart[] {
  const { report } = group;
  return report.results.map((r, i) => {
    const { title, svg } = confusionSvg(r, report.class_names);
    return { name: confusionChartName(group, i), title: `${title}: ${group.title}`, svg };
  });
}

export interface RunReportOptions {
  /** Projector output size for the collapse chart's 1/sqrt(d) line; read from config.yaml when absent. */
  projDim?: number;
  /** Where to write; default <run>/report. */
  outDir?: string;
}

export interface RunReport {
  dir: string;
  /** The PNG charts, then summary.md. */
  files: string[];
  summary: string;
  lines: RunMetrics['lines'];
  /** False when this system's librsvg drew the PNGs without text (no fonts); the SVGs have it. */
  textRendered: boolean;
}

/** The charts of a run: training curves, then for each evaluation group its label-fraction plot and confusion maps. */
export function runCharts(run: RunData, projDim?: number): Chart[] {
  const dim = projDim ?? configValue(run.config, 'method.proj_dim');
  const charts = trainingCharts(run.metrics, typeof dim === 'number' ? dim : undefined);
  for (const group of run.evals) {
    const fractions = labelFractionChart(group);
    if (fractions) charts.push(fractions);
    charts.push(...confusionCharts(group), ...pictureCharts(group));
  }
  return charts;
}

/** A group's UMAP and neighbour grid, as its records keep them (umap-<group>, neighbours-<group>). */
export function pictureCharts(group: RunEval): Chart[] {
  const { umap, neighbours } = group.pictures ?? {};
  return [
    ...(umap ? [{ name: `umap-${group.id}`, title: `UMAP of the features: ${group.title}`, svg: umap }] : []),
    ...(neighbours ? [{ name: `neighbours-${group.id}`, title: `Nearest training images of test images: ${group.title}`, svg: neighbours }] : []),
  ];
}

/** Chart names a report writes (training curves, evaluation charts): what may be removed once no longer drawn. */
const CHART_STEM = /^(loss|lr|loss_scale|collapse|knn|train-.+|label_fraction(-.+)?|confusion-.+|umap-.+|neighbours-.+)$/;

/**
 * Removes the charts of an earlier report that this one no longer draws (a replaced record's,
 * a chart name of an older version), so every PNG in the folder belongs to the summary beside it.
 */
async function removeStaleCharts(dir: string, charts: readonly Chart[]): Promise<void> {
  const current = new Set(charts.map((c) => c.name));
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return;
  }
  for (const name of names) {
    const m = /^(.+)\.(png|svg)$/.exec(name);
    if (m && CHART_STEM.test(m[1]!) && !current.has(m[1]!)) await rm(join(dir, name), { force: true });
  }
}

export async function writeRunReport(runDir: string, options: RunReportOptions = {}): Promise<RunReport> {
  const run = await readRun(runDir);
  const dir = options.outDir ?? join(runDir, 'report');
  const charts = runCharts(run, options.projDim);
  const files: string[] = [];
  for (const chart of charts) files.push(await writeChart(dir, chart.name, chart.svg));
  await removeStaleCharts(dir, charts);
  const textRendered = await svgTextRenders();
  const summary = join(dir, 'summary.md');
  await writeFileAtomic(summary, runSummaryMarkdown(run, charts, { textRendered }));
  files.push(summary);
  return { dir, files, summary, lines: run.metrics.lines, textRendered };
}
