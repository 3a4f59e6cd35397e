/**
 * The end of `simtrip eval`: its results kept as records (records.ts), a line for each record it
 * replaced, the optional --out JSON, and the one-line summary it prints.
 */
import { join } from 'node:path';
import type { Config } from '../config/schema.js';
import { writeJsonAtomic } from '../io/atomic.js';
import type { EvalReport } from './evaluate.js';
import type { EvalResult } from './protocols.js';
import { EVALS_DIR, evalRecords, recordDir, RECORD_FILE, saveEvalRecords, type EvalRecord } from './records.js';

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

/**
 * Saves the report's results as records in `<home>/evals/`, says which records it replaced (one line
 * each, to `log`), writes `out` when given (the report with its record ids and folders), and returns
 * the one-line summary for stdout.
 */
export async function keepEvalRecords(report: EvalReport, cfg: Config, home: string, options: { out?: string; log: (line: string) => void }): Promise<string> {
  const records = evalRecords(report, cfg, home);
  const saved = await saveEvalRecords(home, records.map((record) => ({ record })));
  for (const old of saved.replaced) {
    const now = records.find((r) => r.id === old.id)!;
    const change = `balanced accuracy ${pct(old.result.metrics.balanced_accuracy)} -> ${pct(now.result.metrics.balanced_accuracy)}`;
    options.log(`eval: replaced record ${old.id} (${resultName(old.result)}, same key, written ${old.created}; ${change})`);
  }
  if (options.out) {
    await writeJsonAtomic(options.out, { ...report, records: records.map((r) => ({ id: r.id, path: join(recordDir(home, r.id), RECORD_FILE) })) });
  }
  return summaryLine(report, records, home, { added: saved.added.length, replaced: saved.replaced.length });
}
