/**
 * metrics.jsonl: one JSON object per line, appended as training goes. Lines are buffered and written
 * at flush points (before every checkpoint, at a stop, and at least every half minute) so a step
 * costs no I/O. A resumed run first drops the lines logged after its checkpoint, so the file reads as
 * one uninterrupted run.
 */
import { appendFile, mkdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Normalization } from '../data/augment.js';
import { writeFileAtomic } from '../io/atomic.js';
import { isRecord } from '../util/values.js';

export type MetricsRecord = { kind: string; step: number } & Record<string, unknown>;

/**
 * A log the trainer writes as it trains (metrics.jsonl; any other record of the steps, such as
 * TensorBoard events). Every such log follows one rule, which keeps it equal to an uninterrupted
 * run's across Ctrl-C, kill -9 and --resume:
 *
 * - `resumeAt(step)` is called once before the first step: the run continues after `step` (0 for a
 *   fresh run), so everything logged after `step` is dropped (or marked superseded) first;
 * - `flush()` is called before every checkpoint is written and at a stop, so whatever a checkpoint
 *   covers is on disk before the checkpoint says it happened; lines written after the newest
 *   checkpoint are the ones the next `resumeAt` drops.
 */
export interface TrainingLog {
  resumeAt(step: number): Promise<void>;
  append(record: MetricsRecord): void;
  flush(): Promise<void>;
  /** Called once when the run ends, however it ends (finished, stopped, failed), after a last flush(). */
  close?(): Promise<void>;
  /** Called once after resumeAt, when config.yaml and run.json are written: what the run is. */
  started?(run: RunStart): void;
  /**
   * A batch's augmented views as the step receives them, at the first step of the run and at the
   * first step of every train.knn_every-th epoch (the same steps for a resumed run as for an
   * uninterrupted one). The buffers are the step's: copy what is kept, before returning.
   */
  views?(batch: ViewBatch): void;
}

/** The resolved config and run.json of a run that has started (fresh) or resumed at `step`. */
export interface RunStart {
  step: number;
  /** config.yaml's text. */
  config: string;
  /** run.json's content. */
  info: Record<string, unknown>;
}

/** One batch's views: [B, side, side, 3] float32 each (SimSiam's pair, SimTriplet's three), normalised. */
export interface ViewBatch {
  /** The step these views train: the global step count after it. */
  step: number;
  /** 1-based epoch. */
  epoch: number;
  views: readonly Float32Array[];
  side: number;
  normalization: Normalization;
}

export class MetricsLog implements TrainingLog {
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

  /** Drops the records after `step` (a fresh run: step 0, every record). */
  async resumeAt(step: number): Promise<void> {
    if (step === 0) await this.reset();
    else await this.truncateAfter(step);
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
