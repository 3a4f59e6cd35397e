/**
 * The end of `simtrip eval`: its results kept as records (records.ts), a line for each record it
 * replaced, the optional --out JSON, and the one-line summary it prints.
 */
import { join } from 'node:path';
import type { Config } from '../config/schema.js';
import { writeJsonAtomic } from '../io/atomic.js';
import type { EvalReport } from './evaluate.js';
import { featureViewFiles } from './feature_views.js';
import type { FittedProbe } from './fitted_probe.js';
import type { EvalResult } from './protocols.js';
import { EVALS_DIR, evalRecords, recordDir, RECORD_FILE, saveEvalRecords, type EvalRecord, type RecordToSave } from './records.js';
import { savedProbeFiles } from './saved_probe.js';

const pct = (x: number) => `${(100 * x).toFixed(2)}%`;

/** "linear 10%" / "kNN". */
export function resultName(r: EvalResult): string {
  return r.classifier === 'linear' ? `linear ${Number((r.label_fraction * 100).toPrecision(6))}%` : 'kNN';
}

/** The label a record carries wherever it is shown when its data is not the checkpoint's training data. */
export function otherDataLabel(other: NonNullable<EvalRecord['other_data']>): string {
  const shown = other.differences.slice(0, 3).join(', ') + (other.differences.length > 3 ? `, +${other.differences.length - 3} more` : '');
  return `other data than trained on: ${shown}`;
}

function summaryLine(report: EvalReport, records: readonly EvalRecord[], home: string, saved: { added: number; replaced: number }): string {
  const scores = report.results
    .map((r) => {
      const name = r.classifier === 'linear' ? `linear@${r.label_fraction}` : 'knn';
      return `${name} acc ${pct(r.metrics.accuracy)} bal ${pct(r.metrics.balanced_accuracy)} f1 ${pct(r.metrics.macro_f1)}`;
    })
    .join(' | ');
  const other = records[0]?.other_data;
  const label = other ? ` [${otherDataLabel(other)}]` : '';
  return `${scores} (${report.train_samples} train / ${report.test_samples} test)${label} -> ${join(home, EVALS_DIR)} (${saved.added} new, ${saved.replaced} replaced)`;
}

export interface KeepOptions {
  out?: string;
  log: (line: string) => void;
  /** The probe behind each linear result (EvalOptions.onProbe), kept beside its record. */
  probes?: ReadonlyMap<EvalResult, FittedProbe>;
}

/** A record with the files of its probe, when eval kept one. */
function withProbe(record: EvalRecord, report: EvalReport, probes: KeepOptions['probes']): RecordToSave {
  const probe = probes?.get(record.result);
  if (!probe || !report.encoder_fingerprint) return { record };
  const preprocessing = { imageSize: report.input.image_size, normalization: report.input.normalization };
  return { record, files: savedProbeFiles(record, probe, { fingerprint: report.encoder_fingerprint, preprocessing }) };
}

/** How to use a kept probe: "; classify images with simtrip predict --checkpoint ... --probe ...". */
function predictHint(report: EvalReport, home: string, kept: readonly string[]): string {
  const source = report.encoder_source;
  if (source.kind === 'random-init') return '';
  const runDir = source.kind === 'weights' ? ` --run-dir ${home}` : '';
  return `; classify images with simtrip predict --checkpoint ${source.path}${runDir} --probe ${kept.length === 1 ? kept[0] : '<id>'} --images <dir> --out preds.csv`;
}

/**
 * Saves the report's results as records in `<home>/evals/` (with their probes, see saved_probe.ts),
 * says which records it replaced (one line each, to `log`), writes `out` when given (the report with
 * its record ids and folders), and returns the one-line summary for stdout.
 */
export async function keepEvalRecords(report: EvalReport, cfg: Config, home: string, options: KeepOptions): Promise<string> {
  const records = evalRecords(report, cfg, home);
  const items = records.map((record) => withProbe(record, report, options.probes));
  // Each record also keeps the evaluation's UMAP and neighbour grid, which the report draws per encoder and data.
  const views = report.views ? featureViewFiles(report.views) : undefined;
  const saved = await saveEvalRecords(home, views ? items.map((i) => ({ ...i, files: { ...views, ...i.files } })) : items);
  for (const old of saved.replaced) {
    const now = records.find((r) => r.id === old.id)!;
    const change = `balanced accuracy ${pct(old.result.metrics.balanced_accuracy)} -> ${pct(now.result.metrics.balanced_accuracy)}`;
    options.log(`eval: replaced record ${old.id} (${resultName(old.result)}, same key, written ${old.created}; ${change})`);
  }
  const kept = items.filter((i) => i.files).map((i) => i.record.id);
  if (kept.length > 0) options.log(`probes   kept beside their records (${kept.join(', ')})${predictHint(report, home, kept)}`);
  if (options.out) {
    const { views: _views, ...plain } = report;
    await writeJsonAtomic(options.out, { ...plain, records: records.map((r) => ({ id: r.id, path: join(recordDir(home, r.id), RECORD_FILE) })) });
  }
  return summaryLine(report, records, home, { added: saved.added.length, replaced: saved.replaced.length });
}
