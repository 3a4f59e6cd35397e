/**
 * Event files: TFRecord files of serialized tensorboard.Event messages. Reading them back serves a
 * resumed run (which drops the steps it will log again) and the tests (which check what was written).
 */
import { readdir, readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { frameRecord, readRecords } from './records.js';
import { tensorBoardTypes, toPlain } from './schema.js';

/** TensorBoard takes every file whose name contains this for an event file. */
export const EVENT_FILE_MARKER = 'tfevents';

/** What an event file starts with; "brain.Event:2" makes TensorBoard purge on SessionLog.START. */
export const FILE_VERSION = 'brain.Event:2';

/** A decoded event (see tensorboard.proto): wall_time, step and one of file_version, summary, session_log. */
export interface EventRecord {
  wall_time: number;
  step: number;
  file_version?: string;
  summary?: { value: SummaryValue[] };
  session_log?: { status: number; msg?: string };
  [field: string]: unknown;
}

export interface SummaryValue {
  tag: string;
  simple_value?: number;
  image?: { height: number; width: number; colorspace: number; encoded_image_string: Buffer };
  tensor?: { dtype: number; tensor_shape?: { dim?: Array<{ size: number }> }; string_val?: Buffer[]; float_val?: number[] };
  metadata?: { plugin_data?: { plugin_name: string; content?: Buffer }; data_class?: number } | null;
}

/**
 * The file name TensorBoard's own writers use (events.out.tfevents.<seconds>.<host>.<pid>.<n>):
 * TensorBoard reads the files of a folder in name order, which this keeps in time order.
 */
export function eventFileName(seconds: number, n: number): string {
  const host = hostname().replace(/[^A-Za-z0-9.-]/g, '_') || 'host';
  return `events.out.${EVENT_FILE_MARKER}.${Math.floor(seconds)}.${host}.${process.pid}.${n}`;
}

export function encodeEvent(event: Record<string, unknown>): Buffer {
  const { Event } = tensorBoardTypes();
  return frameRecord(Event.encode(Event.fromObject(event)).finish());
}

export interface DecodedEventFile {
  events: EventRecord[];
  /** Bytes covered by whole, checksummed records. */
  validBytes: number;
  /** Why reading stopped early (torn or corrupt tail); absent for a clean file. */
  problem?: string;
}

export function decodeEventFile(bytes: Uint8Array): DecodedEventFile {
  const { Event } = tensorBoardTypes();
  const { records, validBytes, problem } = readRecords(bytes);
  const events = records.map((r) => toPlain(Event, Event.decode(r)) as EventRecord);
  return { events, validBytes, problem };
}

export async function readEventFile(path: string): Promise<DecodedEventFile> {
  return decodeEventFile(await readFile(path));
}

/** The event files of a folder, in the order TensorBoard reads them (by name); none when it does not exist. */
export async function eventFiles(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return names.filter((n) => n.includes(EVENT_FILE_MARKER)).sort().map((n) => join(dir, n));
}
