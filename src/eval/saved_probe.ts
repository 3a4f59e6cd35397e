/**
 * A fitted linear probe kept beside its evaluation record (`<run>/evals/<id>/`), so it can classify
 * new images (`simtrip predict`) or ship with the encoder (`simtrip export --with-probe`):
 *
 *   probe.safetensors   member.<i>.weight [classes, features] (PyTorch nn.Linear layout), member.<i>.bias
 *                       [classes], and the feature standardisation member.<i>.mean / member.<i>.std
 *                       [features] (absent when eval.linear.normalize was off)
 *   probe.json          what they mean: class names, label fraction, protocol and how members combine
 *                       (one probe; or leave-one-group-out's fold probes, the mean of their softmax
 *                       probabilities), the encoder it belongs to (checkpoint path, step and a
 *                       fingerprint of its weights, see encoder_fingerprint.ts), the input
 *                       preprocessing, whether features were rounded to float16 (the feature cache),
 *                       the probe's settings and its test scores.
 *
 * A member's class probabilities are softmax(((x - mean) / std) W^T + b) for pooled features x; the
 * prediction is their argmax, exactly as eval scored the test split.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import type { Normalization } from '../data/augment.js';
import { preprocessingRecord, type Preprocessing } from '../data/preprocessing.js';
import type { FileData } from '../io/atomic.js';
import { encodeSafetensors, readSafetensors, type TensorToWrite } from '../io/safetensors.js';
import { InputFileError, UserError } from '../util/errors.js';
import type { EncoderModel } from '../model/build.js';
import { encoderFingerprint, shortFingerprint } from './encoder_fingerprint.js';
import { ENSEMBLE_COMBINE, type FittedMember, type FittedProbe } from './fitted_probe.js';
import { makeLinearProbe, type LinearProbe } from './linear_probe.js';
import type { LinearResult } from './protocols.js';
import { EVALS_DIR, readEvalRecords, recordDir, type EvalRecord } from './records.js';

export const PROBE_INFO_FILE = 'probe.json';
export const PROBE_TENSORS_FILE = 'probe.safetensors';
export const PROBE_FORMAT = 1;
const SINGLE = 'single probe';

const EncoderSchema = z.object({
  kind: z.enum(['checkpoint', 'weights', 'random-init']),
  /** The checkpoint (relative to the run directory when inside it) or weights file; null for random init. */
  path: z.string().nullable(),
  step: z.number().int().nullable(),
  description: z.string(),
  fingerprint: z.string().regex(/^sha256:[0-9a-f]{64}$/),
});

const MemberSchema = z.object({
  name: z.string(),
  held_out_group: z.string().optional(),
  fitted_on: z.number().int().nonnegative(),
  standardized: z.boolean(),
});

const InfoSchema = z
  .object({
    format: z.literal(PROBE_FORMAT),
    record_id: z.string(),
    protocol: z.enum(['split', 'logo']),
    class_names: z.array(z.string()).min(2),
    label_fraction: z.number().positive().max(1),
    feature_dim: z.number().int().positive(),
    combine: z.enum([SINGLE, ENSEMBLE_COMBINE]),
    members: z.array(MemberSchema).min(1),
    encoder: EncoderSchema,
    preprocessing: z.object({ image_size: z.number().int().positive(), normalization: z.enum(['imagenet', 'bit']) }).passthrough(),
    features: z.object({ dtype: z.enum(['float32', 'float16']) }),
    test: z.object({ samples: z.number().int(), accuracy: z.number(), balanced_accuracy: z.number(), macro_f1: z.number() }),
    created: z.string(),
  })
  .passthrough();

export type SavedProbeInfo = z.infer<typeof InfoSchema>;
export type ProbeEncoder = SavedProbeInfo['encoder'];

export interface SavedProbe {
  /** The record folder the probe lives in. */
  readonly dir: string;
  readonly info: SavedProbeInfo;
  readonly fitted: FittedProbe;
}

/** What eval knows about the encoder and its input when it keeps a probe. */
export interface ProbeContext {
  readonly fingerprint: string;
  readonly preprocessing: Preprocessing;
}

const tensorName = (member: number, what: 'weight' | 'bias' | 'mean' | 'std') => `member.${member}.${what}`;

/** [rows x cols] row-major to [cols x rows]. */
function transpose(x: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = x[r * cols + c]!;
  return out;
}

/** A probe's weights in PyTorch's nn.Linear layout, [classes x features] row-major. */
export function weightsByClass(probe: LinearProbe): Float32Array {
  return transpose(probe.weights, probe.dim, probe.numClasses);
}

/** A member's parameters in PyTorch's nn.Linear layout: weight [classes, features]. */
function memberTensors(member: FittedMember, index: number): TensorToWrite[] {
  const { probe } = member;
  const out: TensorToWrite[] = [
    { name: tensorName(index, 'weight'), dtype: 'F32', shape: [probe.numClasses, probe.dim], data: weightsByClass(probe) },
    { name: tensorName(index, 'bias'), dtype: 'F32', shape: [probe.numClasses], data: probe.bias },
  ];
  if (probe.mean && probe.std) {
    out.push({ name: tensorName(index, 'mean'), dtype: 'F32', shape: [probe.dim], data: probe.mean });
    out.push({ name: tensorName(index, 'std'), dtype: 'F32', shape: [probe.dim], data: probe.std });
  }
  return out;
}

function encoderOf(record: EvalRecord, fingerprint: string): ProbeEncoder {
  const e = record.key.encoder;
  return {
    kind: e.kind,
    path: e.kind === 'random-init' ? null : e.file,
    step: e.kind === 'checkpoint' ? e.step : null,
    description: record.encoder,
    fingerprint,
  };
}

/** The files that keep `fitted` beside `record` (saveEvalRecords writes them with it). */
export function savedProbeFiles(record: EvalRecord, fitted: FittedProbe, ctx: ProbeContext): Record<string, FileData> {
  const result = record.result as LinearResult;
  const { accuracy, balanced_accuracy, macro_f1 } = result.metrics;
  const info: SavedProbeInfo = {
    format: PROBE_FORMAT,
    record_id: record.id,
    protocol: result.protocol,
    class_names: [...record.class_names],
    label_fraction: result.label_fraction,
    feature_dim: record.feature_dim,
    combine: fitted.members.length === 1 ? SINGLE : ENSEMBLE_COMBINE,
    members: fitted.members.map((m) => ({ name: m.name, ...(m.held_out_group === undefined ? {} : { held_out_group: m.held_out_group }), fitted_on: m.fitted_on, standardized: m.probe.mean !== undefined })),
    standardization: 'each member: (x - member.<i>.mean) / member.<i>.std per feature (the statistics of the features it was fitted on), then x W^T + b',
    encoder: encoderOf(record, ctx.fingerprint),
    preprocessing: { image_size: ctx.preprocessing.imageSize, normalization: ctx.preprocessing.normalization, ...preprocessingRecord(ctx.preprocessing) },
    features: { dtype: record.features.dtype },
    settings: result.settings,
    ...(result.selection ? { chosen_on_validation: result.selection.chosen } : {}),
    test: { samples: result.settings.test_samples, accuracy, balanced_accuracy, macro_f1 },
    tensors: { file: PROBE_TENSORS_FILE, layout: 'member.<i>.weight [classes, features], member.<i>.bias [classes], member.<i>.mean and .std [features]' },
    created: record.created,
  };
  const tensors = fitted.members.flatMap((m, i) => memberTensors(m, i));
  return {
    [PROBE_TENSORS_FILE]: encodeSafetensors(tensors, { format: 'pt', 'simtrip.probe': record.id }),
    [PROBE_INFO_FILE]: `${JSON.stringify(info, null, 2)}\n`,
  };
}

function tensorOf(file: Awaited<ReturnType<typeof readSafetensors>>, name: string, shape: readonly number[]): Float32Array {
  const info = file.info(name);
  if (info.shape.join(',') !== shape.join(',')) {
    throw new InputFileError(file.path, `tensor '${name}' has shape [${info.shape.join(', ')}], expected [${shape.join(', ')}]`);
  }
  return file.getFloat32(name);
}

async function readInfo(path: string): Promise<SavedProbeInfo> {
  let json: unknown;
  try {
    json = JSON.parse(await readFile(path, 'utf8'));
  } catch (err) {
    throw new InputFileError(path, `cannot read the probe's description: ${(err as Error).message}`);
  }
  const parsed = InfoSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new InputFileError(path, `not a simtrip probe description (${issue.path.join('.') || '(root)'}: ${issue.message})`);
  }
  return parsed.data;
}

/** Reads the probe kept in a record folder. */
export async function readSavedProbe(dir: string): Promise<SavedProbe> {
  const info = await readInfo(join(dir, PROBE_INFO_FILE));
  const file = await readSafetensors(join(dir, PROBE_TENSORS_FILE));
  const d = info.feature_dim;
  const k = info.class_names.length;
  const members: FittedMember[] = info.members.map((m, i) => {
    const weights = transpose(tensorOf(file, tensorName(i, 'weight'), [k, d]), k, d);
    const bias = tensorOf(file, tensorName(i, 'bias'), [k]);
    const stats = m.standardized ? { mean: tensorOf(file, tensorName(i, 'mean'), [d]), std: tensorOf(file, tensorName(i, 'std'), [d]) } : undefined;
    return { name: m.name, held_out_group: m.held_out_group, fitted_on: m.fitted_on, probe: makeLinearProbe(d, k, weights, bias, stats) };
  });
  return { dir, info, fitted: { members } };
}

/** "linear 10%, split", "linear 100%, logo ensemble of 3 folds". */
export function describeProbe(info: SavedProbeInfo): string {
  const what = `linear ${Number((info.label_fraction * 100).toPrecision(6))}%, ${info.protocol}`;
  return info.members.length > 1 ? `${what} ensemble of ${info.members.length} folds` : what;
}

interface Listed {
  record: EvalRecord;
  info?: SavedProbeInfo;
  problem?: string;
}

/** The linear records under `<home>/evals/` with their probe description (or why it cannot be read). */
async function listProbes(home: string): Promise<{ probes: Listed[]; withoutProbe: number }> {
  const { records } = await readEvalRecords(home);
  const linear = records.filter((r) => r.result.classifier === 'linear');
  const probes: Listed[] = [];
  for (const record of linear) {
    const path = join(recordDir(home, record.id), PROBE_INFO_FILE);
    if (!existsSync(path)) continue;
    try {
      probes.push({ record, info: await readInfo(path) });
    } catch (err) {
      probes.push({ record, problem: (err as Error).message });
    }
  }
  return { probes, withoutProbe: linear.length - probes.length };
}

function listingLine(p: Listed, fingerprint: string, idWidth: number): string {
  const id = p.record.id.padEnd(idWidth);
  if (!p.info) return `${id}  (unreadable: ${p.problem})`;
  const pct = (x: number) => `${(100 * x).toFixed(2)}%`;
  const mine = p.info.encoder.fingerprint === fingerprint ? 'this encoder' : `another encoder: ${p.info.encoder.description}`;
  return `${id}  ${describeProbe(p.info)}, test balanced accuracy ${pct(p.info.test.balanced_accuracy)} (${p.info.test.samples} items), ${p.record.created}; ${mine}`;
}

/**
 * The probe `name` names in `<home>/evals/`: a record id, or the start of exactly one (or of exactly one
 * fitted on the encoder with `fingerprint`). Without a name, the one probe fitted on that encoder. When
 * nothing or more than one matches, the error lists every probe there (and which encoder each belongs to).
 */
export async function findSavedProbe(home: string, name: string | undefined, fingerprint: string, flag: string): Promise<SavedProbe> {
  const { probes, withoutProbe } = await listProbes(home);
  const where = join(home, EVALS_DIR);
  if (probes.length === 0) {
    const older = withoutProbe > 0 ? ` (its ${withoutProbe} linear record(s) were written before eval kept probes)` : '';
    throw new UserError(`${flag}: no saved probe in ${where}${older}; fit one with simtrip eval --linear-probe --checkpoint <this checkpoint>, or name the run that holds it with --run-dir`);
  }
  let matches: Listed[];
  let problem: string;
  if (name === undefined) {
    matches = probes.filter((p) => p.info?.encoder.fingerprint === fingerprint);
    problem = matches.length === 0 ? `none of the probes in ${where} was fitted on this encoder` : `${matches.length} probes in ${where} were fitted on this encoder; name one`;
  } else {
    const exact = probes.filter((p) => p.record.id === name);
    matches = exact.length > 0 ? exact : probes.filter((p) => p.record.id.startsWith(name));
    // Of several, the one fitted on this encoder: the others could not be used anyway.
    const mine = matches.filter((p) => p.info?.encoder.fingerprint === fingerprint);
    if (matches.length > 1 && mine.length === 1) matches = mine;
    problem = matches.length === 0 ? `'${name}' names no probe in ${where}` : `'${name}' matches ${matches.length} probes in ${where}; name one`;
  }
  if (matches.length === 1 && matches[0]!.info) return readSavedProbe(recordDir(home, matches[0]!.record.id));
  if (matches.length === 1) throw new InputFileError(join(recordDir(home, matches[0]!.record.id), PROBE_INFO_FILE), matches[0]!.problem!);
  const idWidth = Math.max(...probes.map((p) => p.record.id.length));
  throw new UserError(`${flag}: ${problem}. The probes there:`, probes.map((p) => listingLine(p, fingerprint, idWidth)));
}

/**
 * The probe `name` names (see findSavedProbe) among the records in `home`, refused unless it was fitted
 * on `model`'s weights: what `simtrip predict` and `simtrip export --with-probe` classify with.
 */
export async function probeForEncoder(home: string, name: string | undefined, model: EncoderModel, description: string, flag: string): Promise<SavedProbe> {
  const fingerprint = encoderFingerprint(model);
  const probe = await findSavedProbe(home, name, fingerprint, flag);
  requireProbeOf(probe, fingerprint, model.normalization, description, flag);
  return probe;
}

/** Refuses (exit 2, one line) a probe fitted on other weights than the encoder `description` names. */
function requireProbeOf(probe: SavedProbe, fingerprint: string, normalization: Normalization, description: string, flag: string): void {
  const e = probe.info.encoder;
  if (e.fingerprint === fingerprint) return;
  const fitted = `${e.description}, weights ${shortFingerprint(e.fingerprint)}`;
  const scaling = probe.info.preprocessing.normalization !== normalization ? `, inputs scaled for '${normalization}' instead of '${probe.info.preprocessing.normalization}'` : '';
  throw new UserError(
    `${flag} ${probe.info.record_id}: fitted on ${fitted}, not on ${description} (weights ${shortFingerprint(fingerprint)}${scaling}); ` +
      'its classes would be read off other features. Fit a probe for this encoder with simtrip eval --linear-probe --checkpoint <it>',
  );
}
