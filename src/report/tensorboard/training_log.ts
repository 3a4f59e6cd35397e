/**
 * TensorBoard as one of a run's training logs (TrainingLog, src/train/metrics_log.ts): every
 * metrics.jsonl record as scalars at its step (tags.ts), the grid of augmented views the trainer
 * hands over (at the first step and every train.knn_every epochs), and the resolved config and
 * run.json as text, in an event file of its own under <run>/tb/.
 *
 * It follows the training logs' resume rule, so its events equal an uninterrupted run's: resumeAt(s)
 * opens a new file after removing from the folder's files every event after step s (those a stopped
 * or killed process wrote past its last checkpoint), and this log's texts at step s (a resume at the
 * same checkpoint writes them again). Evaluations' events sit at checkpoint steps, at or before s,
 * and stay.
 *
 * Costs a step nothing but encoding a few protobuf messages when a metrics record is logged: the
 * numbers are those the trainer already read, and the file is written by the writer's timer and at
 * the trainer's flush points.
 */
import { dirname } from 'node:path';
import type { MetricsRecord, RunStart, TrainingLog, ViewBatch } from '../../train/metrics_log.js';
import { viewGridPng } from '../view_grid.js';
import { TAGS } from './tags.js';
import { markdownCode, TensorBoardWriter, TB_DIR, type TensorBoardOptions } from './writer.js';

/** The tags this log writes at the step a run starts or resumes at. */
const RUN_TEXT_TAGS = [TAGS.config, TAGS.runInfo];

export interface TensorBoardLogOptions extends Pick<TensorBoardOptions, 'flushSeconds' | 'flushBytes' | 'now'> {
  /** Where to say, once, where the events go and how to view them. */
  log?: (line: string) => void;
  /** Rows of the view grid (items of the batch). Default 8. */
  viewRows?: number;
}

export class TensorBoardTrainingLog implements TrainingLog {
  private writer: TensorBoardWriter | undefined;

  constructor(
    readonly runDir: string,
    private readonly options: TensorBoardLogOptions = {},
  ) {}

  /** The event file this log writes (after resumeAt). */
  get file(): string | undefined {
    return this.writer?.file;
  }

  async resumeAt(step: number): Promise<void> {
    this.writer?.close();
    const { flushSeconds, flushBytes, now } = this.options;
    this.writer = await TensorBoardWriter.openRun(this.runDir, { flushSeconds, flushBytes, now, purgeStep: step + 1, drop: { step, tags: RUN_TEXT_TAGS } });
    this.options.log?.(`tensorboard ${this.writer.dir} (view: tensorboard --logdir ${dirname(this.runDir)})`);
  }

  append(record: MetricsRecord): void {
    this.open().metrics(record);
  }

  started(run: RunStart): void {
    const writer = this.open();
    writer.text(TAGS.config, run.step, markdownCode(run.config));
    writer.text(TAGS.runInfo, run.step, markdownCode(JSON.stringify(run.info, null, 2)));
  }

  views(batch: ViewBatch): void {
    this.open().image(TAGS.views, batch.step, viewGridPng(batch.views, batch.side, batch.normalization, this.options.viewRows));
  }

  async flush(): Promise<void> {
    this.writer?.flush();
  }

  async close(): Promise<void> {
    this.writer?.close();
  }

  private open(): TensorBoardWriter {
    if (!this.writer || this.writer.closed) throw new Error(`TensorBoard log of ${this.runDir}/${TB_DIR}: written before resumeAt or after close`);
    return this.writer;
  }
}
