/**
 * Markdown of the reports: a run's summary.md and the side-by-side comparison of several runs.
 */
import { relative } from 'node:path';
import { otherDataLabel } from '../eval/keep_records.js';
import { EVALS_DIR, RECORD_FILE } from '../eval/records.js';
import type { EvalResult, LinearResult } from '../eval/protocols.js';
import type { ClassificationMetrics } from '../eval/metrics.js';
import { fractionLabel, headlineResult, isKnn, isLinear, linearResults, lossScaleNote, resultLabel, runFacts, type RunFacts } from './facts.js';
import type { RunEval } from './eval_groups.js';
import { configValue, type RunData } from './run_data.js';

/** Percent with two decimals; a dash for a missing value. */
export function pct(x: number | undefined): string {
  return x === undefined || !Number.isFinite(x) ? '–' : `${(100 * x).toFixed(2)}%`;
}

function num(x: number | undefined, digits = 4): string {
  return x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(digits);
}

/** A cell can hold neither a pipe nor a line break. */
function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\s*\n\s*/g, ' ');
}

export function markdownTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const line = (cells: readonly string[]) => `| ${cells.map(cell).join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

function configTable(run: RunData, facts: RunFacts): string {
  const c = (path: string) => configValue(run.config, path);
  const schedule = [
    `batch ${c('train.batch_size') ?? '–'}`,
    `base lr ${c('train.base_lr') ?? '–'}`,
    `weight decay ${c('train.weight_decay') ?? '–'}`,
    ...(typeof c('train.warmup_epochs') === 'number' && (c('train.warmup_epochs') as number) > 0 ? [`warm-up ${c('train.warmup_epochs')} epoch(s)`] : []),
  ].join(', ');
  const engine = [run.info?.engine, run.info?.engine_detail].filter((v) => typeof v === 'string').join(' – ');
  const rows: string[][] = [
    ['method', facts.method],
    ['backbone', facts.arch],
    ['data', facts.data],
    ['epochs', `${facts.epochs ?? '–'} (${schedule})`],
    ['precision', String(c('engine.precision') ?? 'fp32')],
    ['engine', engine || String(c('engine.backend') ?? '–')],
    ['seed', String(c('seed') ?? '–')],
  ];
  return markdownTable(['setting', 'value'], rows);
}

function trainingTable(facts: RunFacts): string {
  const rows: string[][] = [
    ['steps', facts.steps === undefined ? '–' : `${facts.steps} (epoch ${facts.epochsDone ?? '–'} of ${facts.epochs ?? '–'})`],
    [`final loss${facts.finalLoss ? ` (mean over ${facts.finalLoss.over})` : ''}`, num(facts.finalLoss?.loss)],
    ...Object.entries(facts.finalLoss?.terms ?? {}).map(([k, v]) => [`final ${k}`, num(v)]),
    [
      'kNN monitor',
      facts.finalKnn ? `${pct(facts.finalKnn.accuracy)} at epoch ${facts.finalKnn.epoch} (best ${pct(facts.bestKnn!.accuracy)} at epoch ${facts.bestKnn!.epoch})` : '–',
    ],
  ];
  if (facts.finalLossScale !== undefined) rows.push(['loss scale (final)', String(facts.finalLossScale)]);
  if (facts.medianImgPerS !== undefined) rows.push(['throughput', `${facts.medianImgPerS.toFixed(1)} img/s (median of the logged intervals)`]);
  return markdownTable(['measure', 'value'], rows);
}

/** What a linear result chose (split with val) or how its folds scored (logo). */
function resultNote(r: EvalResult): string {
  if (!isLinear(r)) return `k ${r.settings.k}, t ${r.settings.t}`;
  if (r.selection) {
    const { chosen, val } = r.selection;
    return `val bal. acc. ${pct(val.balanced_accuracy)} (chosen: base lr ${chosen.base_lr}, epoch ${chosen.epoch} of ${r.settings.epochs})`;
  }
  if (r.fold_summary) {
    const b = r.fold_summary.balanced_accuracy;
    return `folds bal. acc. ${pct(b.mean)} ± ${pct(b.std)}; test = ensemble of ${r.ensemble?.members ?? r.folds?.length} fold probes`;
  }
  return `base lr ${r.settings.base_lr}, ${r.settings.epochs} epochs`;
}

function resultsTable(group: RunEval): string {
  const { report } = group;
  const rows = report.results.map((r, i) => [
    isLinear(r) ? 'linear' : 'kNN',
    r.protocol,
    isLinear(r) ? fractionLabel(r.label_fraction) : '100%',
    String(r.settings.train_samples),
    String(r.settings.test_samples),
    pct(r.metrics.accuracy),
    pct(r.metrics.balanced_accuracy),
    pct(r.metrics.macro_f1),
    resultNote(r),
    group.records ? `\`${group.records[i]!.id}\`` : '–',
  ]);
  return markdownTable(['probe', 'protocol', 'labels', 'fitted on', 'tested on', 'accuracy', 'balanced accuracy', 'macro F1', 'notes', 'record'], rows);
}

function foldsTable(r: LinearResult): string {
  const rows = r.folds!.map((f) => [f.group, String(f.train_samples), String(f.test_samples), pct(f.metrics.accuracy), pct(f.metrics.balanced_accuracy), pct(f.metrics.macro_f1)]);
  const s = r.fold_summary!;
  const ms = (k: keyof typeof s) => `${pct(s[k].mean)} ± ${pct(s[k].std)}`;
  rows.push(['mean ± std', '', '', ms('accuracy'), ms('balanced_accuracy'), ms('macro_f1')]);
  return markdownTable(['held-out group', 'fitted on', 'scored on', 'accuracy', 'balanced accuracy', 'macro F1'], rows);
}

/** Per-class scores on test; with the probe's class counts, how many items of each class it was fitted on. */
export function perClassTable(m: ClassificationMetrics, fitted?: Record<string, number>): string {
  const rows = m.per_class.map((c) => [c.name, pct(c.precision), pct(c.recall), pct(c.f1), String(c.support), ...(fitted ? [String(fitted[c.name] ?? 0)] : [])]);
  return markdownTable(['class', 'precision', 'recall', 'F1', 'support', ...(fitted ? ['fitted on'] : [])], rows);
}

function evalSection(group: RunEval): string[] {
  const { report } = group;
  const out: string[] = [`## Evaluation: ${group.title}`, ''];
  const samples = [`${report.train_samples} train`, ...(report.val_samples !== undefined ? [`${report.val_samples} val`] : []), `${report.test_samples} test`].join(' / ');
  const protocol =
    report.protocol === 'logo'
      ? `logo (leave one group out over ${report.groups?.join(', ') ?? 'the groups'}; test = the fold probes' ensemble)`
      : report.val_samples !== undefined
        ? 'split (probe lr and epoch chosen on val, reported on test)'
        : 'split (fit on train, reported on test)';
  if (group.other_data) out.push(`- **${otherDataLabel(group.other_data)}**`);
  out.push(
    `- encoder: ${report.encoder}`,
    `- protocol: ${protocol}`,
    `- data: ${report.data}; labelled samples: ${samples}; features ${report.feature_dim}-d${report.features?.dtype === 'float16' ? ' (float16, cached)' : ''}; engine ${report.engine}`,
    '',
  );
  out.push(resultsTable(group), '');
  for (const r of linearResults(report)) {
    if (r.folds) out.push(`### Folds: ${resultLabel(r)}`, '', foldsTable(r), '');
  }
  const headline = headlineResult(report);
  if (headline) out.push(`### Per class: ${resultLabel(headline)} (test)`, '', perClassTable(headline.metrics, headline.class_counts?.fitted), '');
  return out;
}

export interface SummaryOptions {
  /** Whether the PNGs carry their text (see png.ts); if not, the summary points to the SVGs. */
  textRendered: boolean;
}

export function runSummaryMarkdown(run: RunData, charts: readonly { name: string; title: string }[], options: SummaryOptions): string {
  const facts = runFacts(run);
  const out: string[] = [`# Run report: ${facts.name}`, ''];
  out.push(`Run directory: \`${run.dir}\`. Written ${new Date().toISOString()}.`, '');
  out.push('## Configuration', '', configTable(run, facts), '');
  out.push('## Training', '', trainingTable(facts), '');
  if (run.metrics.lines.malformed > 0) out.push(`Note: ${run.metrics.lines.malformed} malformed line(s) of metrics.jsonl were skipped.`, '');
  if (run.evals.length === 0) out.push('## Evaluation', '', 'No evaluation yet: run `simtrip eval --checkpoint <run dir> --linear-probe --knn`.', '');
  if (run.evals.some((e) => e.records)) {
    out.push(`Evaluation records: \`${EVALS_DIR}/<record>/${RECORD_FILE}\` in the run directory, one per row below.`, '');
  }
  if (run.unreadableRecords.length > 0) out.push(`Note: ${run.unreadableRecords.length} record folder(s) under ${EVALS_DIR}/ could not be read: ${run.unreadableRecords.join(', ')}.`, '');
  for (const e of run.evals) out.push(...evalSection(e));
  out.push('## Plots', '');
  if (!options.textRendered) {
    out.push('Note: this system rendered the PNGs without text (no font found by librsvg); the SVG beside each PNG has it.', '');
  }
  for (const c of charts) out.push(`![${c.title}](${c.name}.png)`, '');
  return `${out.join('\n').trimEnd()}\n`;
}

/** The comparison table's columns beyond the run facts: per label fraction, balanced accuracy and macro F1. */
export function comparisonMarkdown(
  runs: readonly { label: string; run: RunData; reportLink: string }[],
  charts: readonly { name: string; title: string }[],
): string {
  const facts = runs.map((r) => runFacts(r.run));
  const mains = runs.map((r) => r.run.evals[0]?.report);
  const fractions = [...new Set(mains.flatMap((m) => (m ? linearResults(m).map((r) => r.label_fraction) : [])))].sort((a, b) => a - b);
  const header = ['run', 'method', 'backbone', 'data', 'epochs', 'final loss (epoch mean)', 'kNN monitor', 'protocol'];
  for (const f of fractions) header.push(`linear ${fractionLabel(f)} bal. acc.`, `linear ${fractionLabel(f)} macro F1`);
  header.push('kNN bal. acc.');
  const rows = runs.map((r, i) => {
    const f = facts[i]!;
    const main = mains[i];
    const loss = f.finalLoss && (f.finalLoss.over.startsWith('epoch') ? num(f.finalLoss.loss) : `${num(f.finalLoss.loss)} (over ${f.finalLoss.over})`);
    const row = [r.label, f.method, f.arch, f.data, String(f.epochsDone ?? '–'), loss ?? '–', pct(f.finalKnn?.accuracy), main?.protocol ?? '–'];
    for (const fraction of fractions) {
      const res = main ? linearResults(main).find((x) => x.label_fraction === fraction) : undefined;
      row.push(pct(res?.metrics.balanced_accuracy), pct(res?.metrics.macro_f1));
    }
    row.push(pct(main?.results.find(isKnn)?.metrics.balanced_accuracy));
    return row;
  });
  const out: string[] = [`# Comparison: ${runs.map((r) => r.label).join(' vs ')}`, ''];
  out.push(markdownTable(header, rows), '');
  out.push('Linear and kNN scores are each run\'s leading evaluation on its test data (the newest checkpoint evaluated on its own training data); the kNN monitor is the last value logged during training.', '');
  const note = lossScaleNote(facts.map((f) => f.method));
  if (note) out.push(`Note: the loss chart overlays ${note}.`, '');
  out.push('## Runs', '');
  for (const r of runs) out.push(`- ${r.label}: \`${r.run.dir}\` ([report](${r.reportLink}))`);
  out.push('', '## Plots', '');
  for (const c of charts) out.push(`![${c.title}](${c.name}.png)`, '');
  return `${out.join('\n').trimEnd()}\n`;
}

/** A link from `fromDir` to a file, as Markdown wants it (forward slashes). */
export function relativeLink(fromDir: string, to: string): string {
  return relative(fromDir, to).split('\\').join('/');
}
