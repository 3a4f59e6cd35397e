/**
 * Reading what simtrip wrote for TensorBoard, for the tests: every record's framing and masked CRCs
 * checked by hand against TensorFlow's definition, the events decoded with TensorBoard's protos, and
 * the scalars as a (tag, step) table that fails on a duplicate.
 */
import { readFile } from 'node:fs/promises';
import CRC32C from 'crc-32/crc32c.js';
import { expect } from 'vitest';
import { decodeEventFile, eventFiles, type EventRecord, type SummaryValue } from '../../src/report/tensorboard/event_file.js';
import { scalarsOfMetricsRecord, TAGS } from '../../src/report/tensorboard/tags.js';

/** TensorFlow's masked CRC32C, written out here from its definition rather than taken from records.ts. */
export function tfMaskedCrc(data: Uint8Array): number {
  const crc = CRC32C.buf(data) >>> 0;
  const rotated = ((crc >>> 15) | ((crc << 17) >>> 0)) >>> 0;
  return (rotated + 0xa282ead8) % 2 ** 32;
}

/** Walks a TFRecord file by hand, checking every length and data CRC; returns the payloads. */
export function walkRecords(file: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let pos = 0;
  while (pos < file.length) {
    const length = Number(file.readBigUInt64LE(pos));
    expect(file.readUInt32LE(pos + 8)).toBe(tfMaskedCrc(file.subarray(pos, pos + 8)));
    const data = file.subarray(pos + 12, pos + 12 + length);
    expect(file.readUInt32LE(pos + 12 + length)).toBe(tfMaskedCrc(data));
    out.push(data);
    pos += 16 + length;
  }
  expect(pos).toBe(file.length);
  return out;
}

/** Every event of a folder's event files, in TensorBoard's reading order; each file must check out whole. */
export async function allEvents(dir: string): Promise<EventRecord[]> {
  const events: EventRecord[] = [];
  for (const f of await eventFiles(dir)) {
    const bytes = await readFile(f);
    const decoded = decodeEventFile(bytes);
    expect(decoded.problem, f).toBeUndefined();
    expect(walkRecords(bytes)).toHaveLength(decoded.events.length);
    events.push(...decoded.events);
  }
  return events;
}

/** (tag@step) -> value of every scalar, failing on a duplicate. */
export function scalarTable(events: readonly EventRecord[]): Map<string, number> {
  const table = new Map<string, number>();
  for (const e of events) {
    for (const v of e.summary?.value ?? []) {
      if (v.simple_value === undefined) continue;
      const key = `${v.tag}@${e.step}`;
      expect(table.has(key), `duplicate ${key}`).toBe(false);
      table.set(key, v.simple_value);
    }
  }
  return table;
}

/** Every summary value with its step. */
export function summaryValues(events: readonly EventRecord[]): Array<SummaryValue & { step: number }> {
  return events.flatMap((e) => (e.summary?.value ?? []).map((v) => ({ step: e.step, ...v })));
}

/** (tag@step) of every non-scalar value (images, text), failing on a duplicate. */
export function otherValues(events: readonly EventRecord[]): Map<string, SummaryValue> {
  const table = new Map<string, SummaryValue>();
  for (const v of summaryValues(events)) {
    if (v.simple_value !== undefined) continue;
    const key = `${v.tag}@${v.step}`;
    expect(table.has(key), `duplicate ${key}`).toBe(false);
    table.set(key, v);
  }
  return table;
}

/** What a metrics.jsonl's records become as scalars: (tag@step) -> value rounded to float32, as simple_value holds it. */
export function expectedScalars(records: ReadonlyArray<Record<string, unknown>>): Map<string, number> {
  const table = new Map<string, number>();
  for (const r of records) {
    if (typeof r.step !== 'number') continue;
    for (const [tag, v] of scalarsOfMetricsRecord(r as { kind: string; step: number })) table.set(`${tag}@${r.step}`, Math.fround(v));
  }
  return table;
}

/** Scalars a process measured rather than computed (timings, memory): they differ from run to run. */
const MEASURED = new Set<string>([TAGS.imgPerS, TAGS.dataWaitMs, TAGS.rssMib, TAGS.gpuMib, TAGS.gpuPeakMib]);

/** A scalar table without the measured tags: what a resumed run must log exactly as an uninterrupted one. */
export function computedScalars(table: Map<string, number>): Map<string, number> {
  return new Map([...table].filter(([k]) => !MEASURED.has(k.slice(0, k.lastIndexOf('@')))));
}
