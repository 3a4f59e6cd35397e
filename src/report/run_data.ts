/**
 * Reading a run directory for reports: metrics.jsonl (training curves), config.yaml (what was run),
 * run.json (engine, steps per epoch) and the eval*.json reports. Reports must work on runs made by
 * older versions too, so the config is read as plain YAML rather than through today's schema.
 */
import { readdir, readFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { EvalReport } from '../eval/evaluate.js';
import type { EvalResult } from '../eval/protocols.js';
import { NEIGHBOURS_FILE, UMAP_FILE } from '../eval/feature_views.js';
import { readEvalRecords, recordDir } from '../eval/records.js';
import { evalGroups, type RunEval } from './eval_groups.js';
import { InputFileError } from '../util/errors.js';
import { isDirectory } from '../util/fs.js';
import type { Point } from './chart.js';
import { isRecord } from '../util/values.js';

export type MetricsRecord = Record<string, unknown>;

export interface RunMetrics {
  /** Means over each metrics window (train.log_every steps). */
  train: MetricsRecord[];
  /** Means over each whole epoch (runs from before these records have none). */
  epoch: MetricsRecord[];
  knn: MetricsRecord[];
  /** Lines of metrics.jsonl by what became of them. */
  lines: { train: number; epoch: number; knn: number; other: number; malformed: number };
}

export interface RunData {
  dir: string;
  /** The run's name: config `name`, else the folder name. */
  name: string;
  config: Record<string, unknown>;
  /** run.json, when the run has one. */
  info?: Record<string, unknown>;
  metrics: RunMetrics;
  /** The evaluation records in groups, the leading one first, then older simtrip's eval*.json files (eval_groups.ts). */
  evals: RunEval[];
  /** Record folders under evals/ whose record.json could not be read. */
  unreadableRecords: string[];
}

/** What makes a folder a run: the two files `simtrip train` writes first. */
const RUN_FILES = ['metrics.jsonl', 'config.yaml'] as const;

function notARun(path: string, what: string): InputFileError {
  return new InputFileError(path, `${what}: not a simtrip run directory (simtrip train writes ${RUN_FILES.join(' and ')} there)`);
}

async function readText(path: string, what: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw notARun(path, `no ${what}`);
    throw new InputFileError(path, `cannot read the ${what} (${code ?? String(err)})`);
  }
}

/**
 * JSON cannot hold NaN: JSON.stringify writes a NaN loss as null. A null value is therefore a gap,
 * whereas a missing key only means the value was not logged on that line.
 */
export function valueOf(record: MetricsRecord, key: string): number | undefined {
  const v = record[key];
  if (v === null) return Number.NaN;
  return typeof v === 'number' ? v : undefined;
}

/** Sorted by x, the last record of an x winning: a resumed run may log some steps twice. */
export function seriesFrom(records: readonly MetricsRecord[], xKey: string, yKey: string): Point[] {
  const byX = new Map<number, number>();
  for (const r of records) {
    const x = valueOf(r, xKey);
    const y = valueOf(r, yKey);
    if (x === undefined || y === undefined || !Number.isFinite(x)) continue;
    byX.set(x, y);
  }
  return [...byX.entries()].sort((a, b) => a[0] - b[0]);
}

/**
 * Splits metrics.jsonl into train, epoch and kNN records; malformed lines are counted, not fatal. A
 * last line without its newline is being appended by a training run right now (readers do not take
 * the run's lock): it is left for the next read, not counted as malformed.
 */
export function parseMetricsLog(text: string): RunMetrics {
  const lines = { train: 0, epoch: 0, knn: 0, other: 0, malformed: 0 };
  const train: MetricsRecord[] = [];
  const epoch: MetricsRecord[] = [];
  const knn: MetricsRecord[] = [];
  const whole = text.endsWith('\n') ? text : text.slice(0, text.lastIndexOf('\n') + 1);
  for (const line of whole.split('\n')) {
    if (!line.trim()) continue;
    let record: unknown;
    try {
      record = JSON.parse(line);
    } catch {
      lines.malformed++;
      continue;
    }
    if (typeof record !== 'object' || record === null || Array.isArray(record)) {
      lines.malformed++;
      continue;
    }
    const r = record as MetricsRecord;
    if (r.kind === 'train') {
      lines.train++;
      train.push(r);
    } else if (r.kind === 'epoch') {
      lines.epoch++;
      epoch.push(r);
    } else if (r.kind === 'knn') {
      lines.knn++;
      knn.push(r);
    } else {
      lines.other++;
    }
  }
  return { train, epoch, knn, lines };
}

export async function readMetricsLog(runDir: string): Promise<RunMetrics> {
  return parseMetricsLog(await readText(join(runDir, 'metrics.jsonl'), 'metrics log (metrics.jsonl)'));
}

/** A dotted path into a parsed config, e.g. get(cfg, 'model.arch'). */
export function configValue(config: Record<string, unknown>, path: string): unknown {
  let v: unknown = config;
  for (const key of path.split('.')) v = isRecord(v) ? v[key] : undefined;
  return v;
}

async function readConfig(runDir: string): Promise<Record<string, unknown>> {
  const path = join(runDir, 'config.yaml');
  const text = await readText(path, 'resolved config (config.yaml)');
  let value: unknown;
  try {
    value = parseYaml(text);
  } catch (err) {
    throw new InputFileError(path, `not valid YAML (${(err as Error).message.split('\n')[0]})`);
  }
  if (!isRecord(value)) throw new InputFileError(path, 'not a config (expected a YAML mapping)');
  return value;
}

/**
 * Eval reports written before the protocols existed said `protocol: 'linear' | 'knn'` for what is now
 * `classifier`, and had only the split protocol; they are read in today's shape.
 */
function normalizeResult(r: Record<string, unknown>): EvalResult {
  if (r.classifier === undefined && (r.protocol === 'linear' || r.protocol === 'knn')) {
    const settings = isRecord(r.settings) ? r.settings : {};
    return { ...r, classifier: r.protocol, protocol: 'split', label_fraction: settings.label_fraction } as unknown as EvalResult;
  }
  return r as unknown as EvalResult;
}

export async function readEvalReport(path: string): Promise<EvalReport> {
  let value: unknown;
  try {
    value = JSON.parse(await readFile(path, 'utf8'));
  } catch (err) {
    const reason = err instanceof SyntaxError ? `not valid JSON (${err.message})` : `cannot read (${(err as NodeJS.ErrnoException).code ?? String(err)})`;
    throw new InputFileError(path, reason);
  }
  if (!isRecord(value) || !Array.isArray(value.results) || !Array.isArray(value.class_names)) {
    throw new InputFileError(path, 'not a simtrip eval report (expected class_names and results)');
  }
  const results = value.results.filter(isRecord).map(normalizeResult);
  return { ...(value as unknown as EvalReport), protocol: (value.protocol as EvalReport['protocol']) ?? 'split', results };
}

/**
 * eval*.json reports of older simtrip versions (eval.json first, then by name). A file written with
 * --out by this version lists its records, which are read from evals/ instead.
 */
async function readLegacyEvals(runDir: string): Promise<{ file: string; report: EvalReport }[]> {
  const names = (await readdir(runDir)).filter((f) => /^eval.*\.json$/.test(f));
  names.sort((a, b) => (a === 'eval.json' ? -1 : b === 'eval.json' ? 1 : a.localeCompare(b)));
  const evals: { file: string; report: EvalReport }[] = [];
  for (const file of names) {
    const report = await readEvalReport(join(runDir, file));
    if (!Array.isArray((report as { records?: unknown }).records)) evals.push({ file, report });
  }
  return evals;
}

/** A record folder's file as text; undefined when it has none. */
async function recordFile(runDir: string, id: string, name: string): Promise<string | undefined> {
  try {
    return await readFile(join(recordDir(runDir, id), name), 'utf8');
  } catch {
    return undefined;
  }
}

/** The UMAP and neighbour grid of a group: those its newest record that has them keeps (feature_views.ts). */
async function readPictures(runDir: string, group: RunEval): Promise<RunEval['pictures']> {
  const newestFirst = [...(group.records ?? [])].sort((a, b) => b.created.localeCompare(a.created));
  for (const r of newestFirst) {
    const umap = await recordFile(runDir, r.id, UMAP_FILE);
    const neighbours = await recordFile(runDir, r.id, NEIGHBOURS_FILE);
    if (umap !== undefined || neighbours !== undefined) return { umap, neighbours };
  }
  return undefined;
}

async function readEvals(runDir: string): Promise<{ evals: RunEval[]; unreadableRecords: string[] }> {
  const { records, unreadable } = await readEvalRecords(runDir);
  const evals = evalGroups(records, await readLegacyEvals(runDir));
  for (const group of evals) {
    const pictures = await readPictures(runDir, group);
    if (pictures) group.pictures = pictures;
  }
  return { evals, unreadableRecords: unreadable };
}

async function readInfo(runDir: string): Promise<Record<string, unknown> | undefined> {
  try {
    const value: unknown = JSON.parse(await readFile(join(runDir, 'run.json'), 'utf8'));
    return isRecord(value) ? value : undefined;
  } catch {
    // run.json is informational (engine, steps per epoch): a report is still useful without it.
    return undefined;
  }
}

/** True when `dir` holds the files of a training run. */
export async function isRunDir(dir: string): Promise<boolean> {
  if (!isDirectory(dir)) return false;
  const names = new Set(await readdir(dir));
  return RUN_FILES.every((f) => names.has(f));
}

export async function readRun(dir: string): Promise<RunData> {
  if (!isDirectory(dir)) throw notARun(dir, 'no such directory');
  const config = await readConfig(dir);
  const metrics = await readMetricsLog(dir);
  const name = typeof config.name === 'string' ? config.name : basename(resolve(dir));
  return { dir, name, config, info: await readInfo(dir), metrics, ...(await readEvals(dir)) };
}
