/**
 * metrics.jsonl: one JSON object per line, appended as training goes. Lines are buffered and written
 * at flush points (epoch ends, stops) so a step costs no I/O. A resumed run first drops the lines
 * logged after its checkpoint, so the file reads as one uninterrupted run.
 */
import { appendFile, mkdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { writeFileAtomic } from '../io/atomic.js';

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
    let text = '';
    try {
      text = await readFile(this.path, 'utf8');
    } catch {
      // no log yet: nothing to truncate
    }
    const kept = text.split('\n').filter((line) => {
      if (!line.trim()) return false;
      try {
        return (JSON.parse(line) as MetricsRecord).step <= step;
      } catch {
        return false;
      }
    });
    this.pending = [];
    await writeFileAtomic(this.path, kept.length ? `${kept.join('\n')}\n` : '');
  }
}
