/**
 * `simtrip report A B ...`: several runs side by side (e.g. SimSiam vs SimTriplet vs BiT+SimSiam): a
 * Markdown table and overlaid charts of loss, kNN accuracy and balanced accuracy vs label fraction.
 * Each run's own report is refreshed too, so the comparison's links lead to current numbers.
 */
import { basename, join, resolve } from 'node:path';
import { writeFileAtomic } from '../io/atomic.js';
import { UserError } from '../util/errors.js';
import { lineChartSvg, smoothSeries, type Series } from './chart.js';
import { linearResults, lossScaleNote, runFacts } from './facts.js';
import { svgTextRenders, writeChart } from './png.js';
import { readRun, seriesFrom, valueOf, type RunData } from './run_data.js';
import { writeRunReport, type Chart, type RunReport } from './run_report.js';
import { comparisonMarkdown, relativeLink } from './summary.js';

export interface Comparison {
  dir: string;
  files: string[];
  summary: string;
}

/** Run labels: folder names, numbered where two runs share one. */
export function runLabels(dirs: readonly string[]): string[] {
  const names = dirs.map((d) => basename(resolve(d)));
  return names.map((name, i) => (names.indexOf(name) === i && names.lastIndexOf(name) === i ? name : `${name}#${i + 1}`));
}

/** Default comparison folder: runs/compare-<label>-<label>... (as train's default is runs/<name>). */
export function defaultCompareDir(labels: readonly string[]): string {
  return join('runs', `compare-${labels.join('-').replace(/[^A-Za-z0-9._-]/g, '_')}`);
}

/**
 * Runs with different batch sizes take different numbers of steps per epoch, so the loss is drawn
 * against epochs (step / steps_per_epoch from run.json) when every run says its steps per epoch.
 */
function epochScale(runs: readonly RunData[]): Array<(step: number) => number> | undefined {
  const perEpoch = runs.map((r) => valueOf(r.info ?? {}, 'steps_per_epoch'));
  if (perEpoch.some((s) => s === undefined || !(s > 0))) return undefined;
  return perEpoch.map((s) => (step: number) => step / s!);
}

export function comparisonCharts(labels: readonly string[], runs: readonly RunData[]): Chart[] {
  const scales = epochScale(runs);
  const methods = runs.map((r) => runFacts(r).method);
  const note = lossScaleNote(methods);
  const lossSeries: Series[] = runs.map((run, i) => {
    const points = seriesFrom(run.metrics.train, 'step', 'loss').map(([s, y]) => [scales ? scales[i]!(s) : s, y] as const);
    // Overlaid noisy curves are unreadable: each run is drawn as its trend once it has many points.
    const name = note ? `${labels[i]!} (${methods[i]})` : labels[i]!;
    return { name, points: points.length >= 50 ? smoothSeries(points, Math.ceil(points.length / 100)) : points };
  });
  const charts: Chart[] = [];
  const add = (name: string, title: string, opts: Parameters<typeof lineChartSvg>[0]) => charts.push({ name, title, svg: lineChartSvg(opts) });
  add('loss', 'Training loss', { title: 'Training loss', subtitle: note, xLabel: scales ? 'epoch' : 'step', yLabel: 'loss', series: lossSeries, integerX: !scales });
  const knn = runs.map((run, i) => ({ name: labels[i]!, points: seriesFrom(run.metrics.knn, 'epoch', 'accuracy') }));
  if (knn.some((s) => s.points.length > 0)) {
    add('knn', 'kNN monitor accuracy', { title: 'kNN monitor accuracy', xLabel: 'epoch', yLabel: 'accuracy', series: knn, integerX: true, includeY: [0, 1], legendBottom: true });
  }
  const fractions = runs.map((run, i) => ({
    name: labels[i]!,
    points: run.evals[0] ? linearResults(run.evals[0].report).map((r) => [r.label_fraction, r.metrics.balanced_accuracy] as const) : [],
    markers: true,
  }));
  if (fractions.some((s) => s.points.length > 0)) {
    const title = 'Linear probe balanced accuracy vs label fraction';
    add('label_fraction', title, { title, xLabel: 'label fraction', yLabel: 'balanced accuracy', series: fractions, logX: true, includeY: [0, 1], legendBottom: true });
  }
  return charts;
}

export async function compareRuns(dirs: readonly string[], outDir?: string): Promise<Comparison> {
  if (dirs.length < 2) throw new UserError(`report: a comparison needs at least two run directories, got ${dirs.length}`);
  // Every run is read (and so checked) before anything is written.
  const runs: RunData[] = [];
  for (const d of dirs) runs.push(await readRun(d));
  const labels = runLabels(dirs);
  const dir = outDir ?? defaultCompareDir(labels);
  const reports: RunReport[] = [];
  for (const d of dirs) reports.push(await writeRunReport(d));
  const charts = comparisonCharts(labels, runs);
  const files: string[] = [];
  for (const c of charts) files.push(await writeChart(dir, c.name, c.svg));
  const entries = runs.map((run, i) => ({ label: labels[i]!, run, reportLink: relativeLink(dir, reports[i]!.summary) }));
  let markdown = comparisonMarkdown(entries, charts);
  if (!(await svgTextRenders())) markdown += '\nNote: the PNGs were rendered without text (no font found by librsvg); the SVGs beside them have it.\n';
  const summary = join(dir, 'summary.md');
  await writeFileAtomic(summary, markdown);
  files.push(summary);
  return { dir, files, summary };
}
