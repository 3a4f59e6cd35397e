/**
 * metrics.jsonl: one JSON object per line, appended as training goes. Lines are buffered and written
 * at flush points (epoch ends, stops) so a step costs no I/O. A resumed run first drops the lines
 * logged after its checkpoint, so the file reads as one uninterrupted run.
 */
import { appendFile, mkdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { writeFileAtomic } from '../io/atomic.js';
import { isRecord } from '../util/values.js';

export type MetricsRecord = { kind: string; step: number } & Record<string, unknown>;

export class MetricsLog {
  private pending: string[] = [];

  constructor(readonly path: string) {}

  append(record: MetricsRecord): void {
    this.pending.push(JSON.stringify(record));
  }

  async flush(): Promise<void> {
    if (this.pending.length === 0) return;
    const text = `${this.pending.join('\n')}\n`;
    this.pending = [];
    await mkdir(dirname(this.path), { recursive: true });
    await appendFile(this.path, text);
  }

  /** Starts an empty log. */
  async reset(): Promise<void> {
    this.pending = [];
    await writeFileAtomic(this.path, '');
  }

  /** Keeps only records at or before `step` (and unparsable lines are dropped with them). */
  async truncateAfter(step: number): Promise<void> {
    const kept = (await this.written()).filter(({ record }) => record.step <= step).map(({ line }) => line);
    this.pending = [];
    await writeFileAtomic(this.path, kept.length ? `${kept.join('\n')}\n` : '');
  }

  /** The highest step in the file, i.e. how far the run had got; undefined without a log or records. */
  async lastStep(): Promise<number | undefined> {
    return (await this.written()).reduce<number | undefined>((max, { record }) => Math.max(max ?? record.step, record.step), undefined);
  }

  /** The records on disk (lines that parse and carry a step), each with its line as written. */
  private async written(): Promise<{ line: string; record: MetricsRecord }[]> {
    let text = '';
    try {
      text = await readFile(this.path, 'utf8');
    } catch {
      // no log yet: no records
    }
    const out: { line: string; record: MetricsRecord }[] = [];
    for (const line of text.split('\n')) {
      if (!line.trim()) continue;
      let record: unknown;
      try {
        record = JSON.parse(line);
      } catch {
        continue; // a line torn by a crash mid-append
      }
      if (isRecord(record) && typeof record.step === 'number') out.push({ line, record: record as MetricsRecord });
    }
    return out;
  }
}
