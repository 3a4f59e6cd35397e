/**
 * A TensorBoard event writer: scalars, images (PNG) and Markdown text, appended to an event file of
 * its own in the run's tb/ folder, as torch.utils.tensorboard.SummaryWriter writes them.
 *
 * - Live: records are buffered and written out every `flushSeconds` (and on flush/close), so
 *   `tensorboard --logdir runs` shows a run while it trains. Each writer appends to its own new file
 *   and never touches another writer's, so a train and an eval writing one run do not interleave.
 * - Resumable: opened with `purgeStep` (the first step a resumed run logs again), it removes the
 *   events at that step and after from the folder's earlier files, as metrics.jsonl is truncated,
 *   and starts its file with SessionLog.START at that step, which makes a TensorBoard that already
 *   loaded them drop them too. Every training writer's file starts with a START so that a resume's
 *   START is not the first of the run (TensorBoard ignores a run's first); a writer that only adds
 *   values at steps already logged (eval) writes none (sessionStart: false), since TensorBoard drops
 *   every tag's events from a later START's step on.
 * - Replaceable: opened with `drop`, it removes those tags' values at that step from the earlier
 *   files, so values written again (an evaluation repeated) are never there twice. Files it does
 *   not change are left alone, so an evaluation never rewrites a training run's live file.
 * - No TensorFlow or TensorBoard is needed: the records are protobufjs messages of TensorBoard's
 *   schema (tensorboard.proto) in TFRecord framing (records.ts).
 */
import { closeSync, existsSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../../io/atomic.js';
import type { MetricsRecord } from '../run_data.js';
import { writeProjector, type ProjectorEmbedding, type WrittenProjector } from './projector.js';
import { encodeEvent, eventFileName, eventFiles, FILE_VERSION, readEventFile, type EventRecord } from './event_file.js';
import { tensorBoardTypes } from './schema.js';
import { scalarsOfMetricsRecord } from './tags.js';

/** The run folder's TensorBoard folder: runs/<name>/tb. */
export const TB_DIR = 'tb';

export interface TensorBoardOptions {
  /**
   * The first step this writer logs again after a resume: earlier files lose their events from this
   * step on, and TensorBoard is told to drop them (SessionLog.START at this step).
   */
  purgeStep?: number;
  /**
   * Values to replace: these tags' values at this step are removed from the folder's earlier files
   * (an evaluation of the same checkpoint written again, a run's texts logged again at the step it
   * resumes from), so no (tag, step) is there twice.
   */
  drop?: { step: number; tags: Iterable<string> };
  /**
   * Whether the file starts with SessionLog.START (default true): a training writer's does, which
   * makes a TensorBoard that loaded the events after a resume's purgeStep drop them. Any later START
   * drops every tag's events from its step on, so writers that only add values at steps already
   * logged (eval) must not write one.
   */
  sessionStart?: boolean;
  /** Longest time written records wait in memory. Default 5 s. */
  flushSeconds?: number;
  /** Buffered bytes that trigger a write regardless of time. Default 1 MiB. */
  flushBytes?: number;
  /** Wall clock in milliseconds (tests). */
  now?: () => number;
}

export interface PurgeReport {
  /** Files rewritten without their events at or after the purge step. */
  files: string[];
  /** Events removed. */
  events: number;
}

/** PNG width, height and colour type from its header (IHDR is always the first chunk). */
function pngHeader(png: Uint8Array): { width: number; height: number; colorType: number } {
  const b = Buffer.from(png.buffer, png.byteOffset, png.byteLength);
  const signature = '89504e470d0a1a0a';
  if (b.length < 33 || b.subarray(0, 8).toString('hex') !== signature || b.subarray(12, 16).toString('latin1') !== 'IHDR') {
    throw new Error('TensorBoard image: not a PNG');
  }
  return { width: b.readUInt32BE(16), height: b.readUInt32BE(20), colorType: b[25]! };
}

/** Summary.Image's colorspace (1 grey, 2 grey + alpha, 3 RGB, 4 RGBA) of a PNG colour type. */
function colorspaceOf(colorType: number): number {
  return ({ 0: 1, 4: 2, 2: 3, 6: 4, 3: 3 } as Record<number, number>)[colorType] ?? 3;
}

/** Markdown shows text indented by four spaces verbatim, whatever it holds (YAML, JSON). */
export function markdownCode(text: string): string {
  return text
    .replace(/\s+$/, '')
    .split('\n')
    .map((l) => `    ${l}`)
    .join('\n');
}

/** What an earlier file keeps of an event: all of it, some of its summary values, or nothing. */
export type EventFilter = (event: EventRecord) => EventRecord | undefined;

/**
 * Rewrites (atomically) each event file of a folder whose events `filter` changes; the file_version
 * event always stays. With `cutTornTails`, a file with a torn or corrupt tail (a writer killed
 * mid-record) is rewritten without it too: only for a caller that knows no other writer is appending
 * (a training run resuming, which holds the run's lock), since a live writer's later records would go
 * to the replaced file.
 */
export async function filterEventFiles(dir: string, filter: EventFilter, cutTornTails = false): Promise<PurgeReport> {
  const report: PurgeReport = { files: [], events: 0 };
  for (const path of await eventFiles(dir)) {
    if (!(await stat(path)).isFile()) continue;
    const { events, problem } = await readEventFile(path);
    let changed = 0;
    const kept: EventRecord[] = [];
    for (const e of events) {
      const k = e.file_version !== undefined ? e : filter(e);
      if (k !== e) changed++;
      if (k) kept.push(k);
    }
    if (changed === 0 && (problem === undefined || !cutTornTails)) continue;
    await writeFileAtomic(path, kept.map((e) => encodeEvent(e)));
    report.files.push(path);
    report.events += changed;
  }
  return report;
}

/** The filter that drops events at or after `purgeStep` and the `drop` tags' values at its step. */
export function purgeFilter(purgeStep: number | undefined, drop?: { step: number; tags: Iterable<string> }): EventFilter {
  const tags = new Set(drop?.tags ?? []);
  return (e) => {
    if (purgeStep !== undefined && e.step >= purgeStep) return undefined;
    if (!drop || e.step !== drop.step || !e.summary) return e;
    const values = e.summary.value.filter((v) => !tags.has(v.tag));
    if (values.length === e.summary.value.length) return e;
    return values.length > 0 ? { ...e, summary: { ...e.summary, value: values } } : undefined;
  };
}

/** Removes the events at or after `step` (and torn tails) from a folder's event files (each rewritten atomically). */
export function purgeEventsFrom(dir: string, step: number): Promise<PurgeReport> {
  return filterEventFiles(dir, purgeFilter(step), true);
}

export class TensorBoardWriter {
  /** The event file this writer appends to. */
  readonly file: string;
  /** What opening with purgeStep removed from earlier files. */
  readonly purged: PurgeReport;
  private fd: number | undefined;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private lastFlush: number;
  private timer: NodeJS.Timeout | undefined;
  private readonly flushMs: number;
  private readonly flushBytes: number;
  private readonly now: () => number;
  private readonly textTags = new Set<string>();

  private constructor(readonly dir: string, file: string, purged: PurgeReport, options: TensorBoardOptions) {
    this.file = file;
    this.purged = purged;
    this.now = options.now ?? Date.now;
    this.flushMs = (options.flushSeconds ?? 5) * 1000;
    this.flushBytes = options.flushBytes ?? 2 ** 20;
    this.lastFlush = this.now();
    this.fd = openSync(file, 'a');
  }

  /**
   * Opens a new event file in `dir` (created if needed). With `purgeStep`, first removes the
   * events at or after it from the files already there (see the module comment).
   */
  static async open(dir: string, options: TensorBoardOptions = {}): Promise<TensorBoardWriter> {
    const { purgeStep } = options;
    if (purgeStep !== undefined && !(Number.isInteger(purgeStep) && purgeStep >= 0)) {
      throw new RangeError(`TensorBoard purgeStep must be a whole number >= 0, got ${purgeStep}`);
    }
    mkdirSync(dir, { recursive: true });
    const { drop } = options;
    // Only a resuming writer (purgeStep) cuts torn tails: the others may run beside a live writer.
    const purged = purgeStep === undefined && drop === undefined ? { files: [], events: 0 } : await filterEventFiles(dir, purgeFilter(purgeStep, drop), purgeStep !== undefined);
    const now = options.now ?? Date.now;
    let n = 0;
    while (existsSync(join(dir, eventFileName(now() / 1000, n)))) n++;
    const writer = new TensorBoardWriter(dir, join(dir, eventFileName(now() / 1000, n)), purged, options);
    const start = purgeStep ?? 0;
    const { sessionStatus } = tensorBoardTypes();
    writer.event({ step: start, file_version: FILE_VERSION });
    if (options.sessionStart !== false) writer.event({ step: start, session_log: { status: sessionStatus.START } });
    writer.flush();
    return writer;
  }

  /** Opens a writer in `<runDir>/tb`. */
  static openRun(runDir: string, options: TensorBoardOptions = {}): Promise<TensorBoardWriter> {
    return TensorBoardWriter.open(join(runDir, TB_DIR), options);
  }

  scalar(tag: string, step: number, value: number): void {
    this.scalars(step, [[tag, value]]);
  }

  /** Several scalars of one step, as one event. */
  scalars(step: number, values: Iterable<readonly [string, number]> | Record<string, number>): void {
    const entries = Symbol.iterator in values ? [...(values as Iterable<readonly [string, number]>)] : Object.entries(values);
    if (entries.length === 0) return;
    this.summary(step, entries.map(([tag, v]) => ({ tag, simple_value: v })));
  }

  /** The scalars of one metrics.jsonl record (tags.ts), at its step. Records without a step give none. */
  metrics(record: MetricsRecord): void {
    const step = record.step;
    if (typeof step !== 'number') return;
    this.scalars(step, scalarsOfMetricsRecord(record));
  }

  /** A PNG image. */
  image(tag: string, step: number, png: Uint8Array): void {
    const { width, height, colorType } = pngHeader(png);
    this.summary(step, [{ tag, image: { width, height, colorspace: colorspaceOf(colorType), encoded_image_string: png } }]);
  }

  /** Markdown text, shown by TensorBoard's Text tab (a string tensor tagged for the text plugin). */
  text(tag: string, step: number, markdown: string): void {
    const { dataType, dataClass, TextPluginData } = tensorBoardTypes();
    const value: Record<string, unknown> = {
      tag,
      tensor: { dtype: dataType.DT_STRING, tensor_shape: { dim: [{ size: 1 }] }, string_val: [Buffer.from(markdown, 'utf8')] },
    };
    // TensorBoard keeps the first metadata of a tag per file; repeating it would only cost bytes.
    if (!this.textTags.has(tag)) {
      value.metadata = {
        plugin_data: { plugin_name: 'text', content: TextPluginData.encode(TextPluginData.fromObject({ version: 0 })).finish() },
        data_class: dataClass.DATA_CLASS_TENSOR,
      };
      this.textTags.add(tag);
    }
    this.summary(step, [value]);
  }

  /** An embedding for TensorBoard's projector, in this writer's folder (projector.ts). */
  projector(embedding: ProjectorEmbedding): Promise<WrittenProjector> {
    return writeProjector(this.dir, embedding);
  }

  /** Writes everything buffered to the file. */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.lastFlush = this.now();
    if (this.pending.length === 0) return;
    const data = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingBytes);
    this.pending = [];
    this.pendingBytes = 0;
    let done = 0;
    while (done < data.length) done += writeSync(this.requireOpen(), data, done, data.length - done);
  }

  /** Flushes and closes the file; later writes throw. Closing twice is harmless. */
  close(): void {
    if (this.fd === undefined) return;
    this.flush();
    closeSync(this.fd);
    this.fd = undefined;
  }

  get closed(): boolean {
    return this.fd === undefined;
  }

  private summary(step: number, value: Array<Record<string, unknown>>): void {
    this.event({ step, summary: { value } });
  }

  private event(event: { step: number } & Record<string, unknown>): void {
    this.requireOpen();
    if (!Number.isInteger(event.step) || event.step < 0) throw new RangeError(`TensorBoard step must be a whole number >= 0, got ${event.step}`);
    const record = encodeEvent({ wall_time: this.now() / 1000, ...event });
    this.pending.push(record);
    this.pendingBytes += record.length;
    if (this.pendingBytes >= this.flushBytes || this.now() - this.lastFlush >= this.flushMs) this.flush();
    else if (!this.timer) {
      // A run between log steps still reaches TensorBoard within flushSeconds; unref'd, the timer
      // never keeps the process alive.
      this.timer = setTimeout(() => {
        if (this.fd !== undefined) this.flush();
      }, this.flushMs);
      this.timer.unref();
    }
  }

  private requireOpen(): number {
    if (this.fd === undefined) throw new Error(`TensorBoard writer for ${this.file} is closed`);
    return this.fd;
  }
}
