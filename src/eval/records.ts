/**
 * Evaluation records. Every result `simtrip eval` produces (one linear probe at one label fraction, or
 * one kNN) is a record keyed by what it measured:
 *
 *   encoder        checkpoint file and its step | weights file and model | random init and model
 *   data           kind, root, labelled root, and a hash of every data setting that selects or shapes
 *                  the images (not workers, cache or augmentation)
 *   protocol       split | logo
 *   classifier     linear | knn, with the label fraction (kNN: 1)
 *   probe          the probe's settings (eval.linear.*, the lr grid when a validation split chose;
 *                  eval.knn k and t)
 *   seed
 *
 * Records live in `<run>/evals/<id>/record.json`. Results accumulate: evaluating again with another
 * key adds records, and the same key replaces only its own record (and says so). The id is stable:
 * the same key always gives the same id, made of readable parts and a hash of the key, e.g.
 * `linear-10pct-step18-3f9a2c1b7e`, `knn-random-init-0a1b2c3d4e`; it is a safe file and folder name.
 * The folder is the record's: files saved beside record.json (a fitted probe, images) are replaced
 * with it, in one swap, so a reader sees either the old record or the new one whole.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm } from 'node:fs/promises';
import { isAbsolute, join, normalize, relative, resolve, sep } from 'node:path';
import { z } from 'zod';
import type { Config, DataConfig } from '../config/schema.js';
import { writeFileAtomic, writeJsonAtomic, type FileData } from '../io/atomic.js';
import { canonicalJson, isRecord } from '../util/values.js';
import type { EvalReport } from './evaluate.js';
import { lrGrid, type EvalResult, type ProtocolName } from './protocols.js';

export const EVALS_DIR = 'evals';
export const RECORD_FILE = 'record.json';
export const RECORD_FORMAT = 1;

/** Which weights were evaluated. A checkpoint's file is relative to the folder holding the records. */
export type EncoderKey =
  | { kind: 'checkpoint'; file: string; step: number }
  | { kind: 'weights'; file: string; model: Record<string, unknown> }
  | { kind: 'random-init'; model: Record<string, unknown> };

export interface DataKey {
  kind: string;
  root: string | null;
  labelled_root: string | null;
  /** sha256 (first 12 hex digits) of the data settings that select or shape the images. */
  hash: string;
}

export interface EvalKey {
  encoder: EncoderKey;
  data: DataKey;
  protocol: ProtocolName;
  classifier: 'linear' | 'knn';
  /** kNN uses every labelled item: 1. */
  label_fraction: number;
  probe: Record<string, unknown>;
  seed: number;
}

export interface EvalRecord {
  format: typeof RECORD_FORMAT;
  /** recordId(key): the record's folder name under evals/. */
  id: string;
  key: EvalKey;
  /** The encoder and data in words, as eval printed them. */
  encoder: string;
  data: string;
  /**
   * Set when a checkpoint was evaluated on other data than it was trained on: both in words, and the
   * data settings that differ ("data.root data/b (trained on data/a)").
   */
  other_data?: { trained_on: string; evaluated_on: string; differences: string[] };
  /** The protocol of the evaluation that wrote the record (a kNN result is split's whatever it is). */
  protocol: ProtocolName;
  config_name: string;
  engine: string;
  feature_dim: number;
  class_names: readonly string[];
  /** Labelled items of the data the probes fit on / select on / are scored on. */
  train_samples: number;
  val_samples?: number;
  test_samples: number;
  groups?: string[];
  features: EvalReport['features'];
  result: EvalResult;
  created: string;
}

/** What a record's folder holds besides record.json (issue: fitted probes, images), written in the same swap. */
export interface RecordToSave {
  record: EvalRecord;
  files?: Record<string, FileData>;
}

/** Data settings that do not change which images are read or how: left out of keys and comparisons. */
const NOT_DATA = ['workers', 'cache_dir', 'keep_images', 'augment'] as const;
/** Settings that only change how much of a data set is used or at what size: the same data for "trained on". */
const NOT_SOURCE = [...NOT_DATA, 'on_bad_image', 'limit', 'test_limit', 'image_size'] as const;

/** A configured path as written, without ./, doubled or trailing separators: data/x/ and ./data/x are data/x. */
function samePath(path: string): string {
  const p = normalize(path);
  return p.length > 1 ? p.replace(/[\\/]+$/, '') : p;
}

function without(data: DataConfig, keys: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = { ...data };
  for (const k of keys) delete out[k];
  for (const k of ['root', 'split_file'] as const) if (typeof out[k] === 'string') out[k] = samePath(out[k] as string);
  if (isRecord(out.labelled) && typeof out.labelled.root === 'string') out.labelled = { ...out.labelled, root: samePath(out.labelled.root) };
  return out;
}

const hash = (value: unknown, digits: number) => createHash('sha256').update(canonicalJson(value)).digest('hex').slice(0, digits);

export function dataKey(data: DataConfig): DataKey {
  return {
    kind: data.kind,
    root: data.root === undefined ? null : samePath(data.root),
    labelled_root: data.labelled.root === undefined ? null : samePath(data.labelled.root),
    hash: hash(without(data, NOT_DATA), 12),
  };
}

/** Leaves of a nested config as [dotted key, value]. */
function leaves(value: unknown, prefix: string, out: Map<string, unknown>): Map<string, unknown> {
  if (isRecord(value)) for (const [k, v] of Object.entries(value)) leaves(v, `${prefix}.${k}`, out);
  else out.set(prefix, value);
  return out;
}

/**
 * The data settings in which `evaluated` reads another data set than `trained` (limits, image size,
 * workers, cache and augmentation aside): "data.root b (trained on a)". Empty: the same data.
 */
export function dataDifferences(trained: DataConfig, evaluated: DataConfig): string[] {
  const a = leaves(without(trained, NOT_SOURCE), 'data', new Map());
  const b = leaves(without(evaluated, NOT_SOURCE), 'data', new Map());
  const text = (v: unknown) => (v === undefined ? '(none)' : typeof v === 'string' ? v : JSON.stringify(v));
  return [...new Set([...a.keys(), ...b.keys()])]
    .filter((k) => canonicalJson(a.get(k)) !== canonicalJson(b.get(k)))
    .map((k) => `${k} ${text(b.get(k))} (trained on ${text(a.get(k))})`);
}

/** "patches data/pathology/patches (labelled data/pathology/labelled)", "synthetic". */
export function describeDataSource(data: DataConfig): string {
  const labelled = data.labelled.root === undefined ? '' : ` (labelled ${data.labelled.root})`;
  return `${data.kind}${data.root === undefined ? '' : ` ${data.root}`}${labelled}`;
}

/** "10pct", "0p5pct", "100pct": a label fraction as a name part. */
function fractionTag(fraction: number): string {
  return `${String(Number((fraction * 100).toPrecision(6))).replace('.', 'p')}pct`;
}

function encoderTag(encoder: EncoderKey): string {
  return encoder.kind === 'checkpoint' ? `step${encoder.step}` : encoder.kind;
}

/** The record's id: readable parts, then a hash of the whole key. The same key always gives the same id. */
export function recordId(key: EvalKey): string {
  const what = key.classifier === 'linear' ? `linear-${fractionTag(key.label_fraction)}` : 'knn';
  return `${what}-${encoderTag(key.encoder)}-${hash(key, 10)}`;
}

/** The folder of a record: `<home>/evals/<id>/`. */
export function recordDir(home: string, id: string): string {
  return join(home, EVALS_DIR, id);
}

function probeSettings(cfg: Config, result: EvalResult): Record<string, unknown> {
  if (result.classifier === 'knn') return { k: result.settings.k, t: result.settings.t };
  const { label_fraction: _fraction, lr_grid: _grid, ...linear } = cfg.eval.linear;
  // The lr grid matters only where a validation split chose among it.
  return result.selection ? { ...linear, lr_grid: lrGrid(cfg.eval.linear) } : linear;
}

function encoderKey(report: EvalReport, home: string): EncoderKey {
  const source = report.encoder_source;
  if (source.kind === 'checkpoint') {
    const rel = relative(resolve(home), resolve(source.path));
    const file = rel.startsWith('..') || isAbsolute(rel) ? resolve(source.path) : rel;
    return { kind: 'checkpoint', file: file.split(sep).join('/'), step: source.step };
  }
  const { weights: _weights, ...model } = source.model;
  return source.kind === 'weights' ? { kind: 'weights', file: normalize(source.path), model } : { kind: 'random-init', model };
}

/** The records of one `simtrip eval`: one per result, keyed for the folder `home` holds them in. */
export function evalRecords(report: EvalReport, cfg: Config, home: string): EvalRecord[] {
  const encoder = encoderKey(report, home);
  const data = dataKey(cfg.data);
  const trainedOn = report.encoder_source.kind === 'checkpoint' ? report.encoder_source.trained_on : undefined;
  const differences = trainedOn ? dataDifferences(trainedOn, cfg.data) : [];
  const other = differences.length > 0 ? { trained_on: describeDataSource(trainedOn!), evaluated_on: describeDataSource(cfg.data), differences } : undefined;
  return report.results.map((result) => {
    const key: EvalKey = {
      encoder,
      data,
      protocol: result.protocol,
      classifier: result.classifier,
      label_fraction: result.classifier === 'linear' ? result.label_fraction : 1,
      probe: probeSettings(cfg, result),
      seed: cfg.seed,
    };
    return {
      format: RECORD_FORMAT,
      id: recordId(key),
      key,
      encoder: report.encoder,
      data: report.data,
      ...(other ? { other_data: other } : {}),
      protocol: report.protocol,
      config_name: report.config_name,
      engine: report.engine,
      feature_dim: report.feature_dim,
      class_names: report.class_names,
      train_samples: report.train_samples,
      ...(report.val_samples !== undefined ? { val_samples: report.val_samples } : {}),
      test_samples: report.test_samples,
      ...(report.groups ? { groups: report.groups } : {}),
      features: report.features,
      result,
      created: report.created,
    };
  });
}

const RecordSchema = z
  .object({
    format: z.literal(RECORD_FORMAT),
    id: z.string().regex(/^[a-z0-9][a-z0-9.-]*$/),
    key: z.object({ encoder: z.object({ kind: z.string() }).passthrough(), data: z.object({ kind: z.string() }).passthrough() }).passthrough(),
    class_names: z.array(z.string()),
    result: z.object({ classifier: z.enum(['linear', 'knn']), metrics: z.object({}).passthrough() }).passthrough(),
    created: z.string(),
  })
  .passthrough();

async function readRecord(path: string): Promise<EvalRecord | undefined> {
  try {
    const parsed = RecordSchema.safeParse(JSON.parse(await readFile(path, 'utf8')));
    return parsed.success ? (parsed.data as unknown as EvalRecord) : undefined;
  } catch {
    return undefined;
  }
}

export interface StoredRecords {
  records: EvalRecord[];
  /** Record folders whose record.json is missing or not a record. */
  unreadable: string[];
}

/** The records under `<home>/evals/`, oldest first. Folders being written (dot names) are not read. */
export async function readEvalRecords(home: string): Promise<StoredRecords> {
  const dir = join(home, EVALS_DIR);
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => !n.startsWith('.')).sort();
  } catch {
    return { records: [], unreadable: [] };
  }
  const records: EvalRecord[] = [];
  const unreadable: string[] = [];
  for (const name of names) {
    const record = await readRecord(join(dir, name, RECORD_FILE));
    if (record && record.id === name) records.push(record);
    else unreadable.push(join(dir, name));
  }
  records.sort((a, b) => a.created.localeCompare(b.created) || a.id.localeCompare(b.id));
  return { records, unreadable };
}

/** Puts a finished record folder in place of the record's folder, old contents and all. */
async function swapIn(home: string, id: string, staged: string): Promise<void> {
  const target = recordDir(home, id);
  for (let attempt = 0; ; attempt++) {
    const old = existsSync(target) ? `${staged}.old` : undefined;
    try {
      if (old) await rename(target, old);
      await rename(staged, target);
      if (old) await rm(old, { recursive: true, force: true });
      return;
    } catch (err) {
      // Another eval of the same key swapped its record in meanwhile: the later one wins.
      const code = (err as NodeJS.ErrnoException).code;
      if (attempt >= 3 || (code !== 'ENOENT' && code !== 'ENOTEMPTY' && code !== 'EEXIST')) throw err;
    }
  }
}

export interface SavedRecords {
  added: EvalRecord[];
  /** The records that were replaced (as they were), in the order of `items`. */
  replaced: EvalRecord[];
}

/**
 * Writes each record (and its files) into `<home>/evals/<id>/`: staged in a dot-named folder, then
 * swapped in. A record of the same key is replaced; every other record stays as it was.
 */
export async function saveEvalRecords(home: string, items: readonly RecordToSave[]): Promise<SavedRecords> {
  const saved: SavedRecords = { added: [], replaced: [] };
  for (const { record, files } of items) {
    const previous = await readRecord(join(recordDir(home, record.id), RECORD_FILE));
    const staged = join(home, EVALS_DIR, `.${record.id}.${process.pid}.${randomBytes(4).toString('hex')}`);
    await mkdir(staged, { recursive: true });
    try {
      for (const [name, data] of Object.entries(files ?? {})) await writeFileAtomic(join(staged, name), data);
      // record.json last: a folder with it is complete.
      await writeJsonAtomic(join(staged, RECORD_FILE), record);
      await swapIn(home, record.id, staged);
    } catch (err) {
      await rm(staged, { recursive: true, force: true });
      throw err;
    }
    if (previous) saved.replaced.push(previous);
    else saved.added.push(record);
  }
  return saved;
}
