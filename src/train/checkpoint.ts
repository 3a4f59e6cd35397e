/**
 * simtrip checkpoints: one .safetensors file per checkpoint, so that replacing one is a single atomic
 * rename and PyTorch tools can read the weights directly.
 *
 *   <param name>                       every ParamStore entry (incl. BN running stats), PyTorch layout, F32;
 *                                      trainable weights F16 with train.save_dtype f16
 *   optimizer.momentum.<param name>    SGD momentum buffers (same layout conversion), when present, F32
 *   __metadata__.simtrip               JSON CheckpointState (epoch, step, resolved config, ...)
 *   __metadata__.format                "pt": what safetensors.torch writes, so torch-side loaders accept it
 */
import { existsSync, readdirSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { z } from 'zod';
import { ConfigSchema, type Config } from '../config/schema.js';
import type { Normalization } from '../data/augment.js';
import { tf } from '../engine/tf.js';
import { writeFileAtomic } from '../io/atomic.js';
import { encodeSafetensors, readSafetensors, type SafetensorsFile, type TensorToWrite } from '../io/safetensors.js';
import type { TensorFile } from '../io/tensor_file.js';
import { notACheckpoint } from '../model/weights_format.js';
import { fromTorchPerm, permuteShape, toTorchPerm, type Param, type ParamStore } from '../model/params.js';
import type { Sgd } from '../optim/sgd.js';
import { LossScalerStateSchema } from '../optim/loss_scale.js';
import { RunningStateSchema } from './running_means.js';
import { HALF_MAX } from '../ops/fp16_round.js';
import { listSome, shapeText } from '../util/text.js';
import { InputFileError } from '../util/errors.js';
import { isDirectory, isFile } from '../util/fs.js';
import { permuteArray } from '../util/permute.js';
import { sameShape } from '../util/values.js';

export const CHECKPOINT_FORMAT = 1;
export const CHECKPOINT_DIR = 'checkpoints';
export const LAST_CHECKPOINT = 'last.safetensors';
export const MOMENTUM_PREFIX = 'optimizer.momentum.';
const METADATA_KEY = 'simtrip';
const EPOCH_FILE = /^epoch-(\d+)\.safetensors$/;

const ArchInfoSchema = z
  .object({
    arch: z.string(),
    stem: z.string().optional(),
    width: z.number().optional(),
    /** Trainable scalar count, a cheap sanity check against the model being restored. */
    params: z.number().int().nonnegative(),
  })
  .passthrough();

export const CheckpointStateSchema = z.object({
  format: z.literal(CHECKPOINT_FORMAT),
  /** Completed epochs. */
  epoch: z.number().int().nonnegative(),
  /** Global optimiser step. */
  step: z.number().int().nonnegative(),
  config: ConfigSchema,
  normalization: z.enum(['imagenet', 'bit']),
  /** Filled in by saveCheckpoint from the config and store when the caller leaves it out. */
  arch: ArchInfoSchema.optional(),
  engine: z.string(),
  created: z.string(),
  metrics: z.record(z.unknown()).default({}),
  /**
   * A checkpoint inside an epoch (a stop): the sums behind the metrics window and the epoch mean not
   * yet logged, so that the resumed run's metrics.jsonl equals an uninterrupted run's.
   */
  running: RunningStateSchema.optional(),
  /** engine.precision mixed16: the dynamic loss scaler, so a resumed run keeps its scale. */
  loss_scaling: z
    .object({
      scaler: LossScalerStateSchema,
      /** Steps skipped for non-finite gradients so far. */
      skipped_steps: z.number().int().nonnegative(),
    })
    .optional(),
});

export type CheckpointState = z.infer<typeof CheckpointStateSchema>;
export type ArchInfo = z.infer<typeof ArchInfoSchema>;

/** What the trainer supplies; format, created time, arch info and metrics are filled in when missing. */
export type CheckpointStateInput = Omit<CheckpointState, 'format' | 'created' | 'metrics'> &
  Partial<Pick<CheckpointState, 'format' | 'created' | 'metrics'>>;

/** train.save_dtype: the safetensors dtype of trainable weights. */
export type WeightDtype = 'F32' | 'F16';

export interface SaveCheckpointOptions {
  store: ParamStore;
  optimizer?: Sgd;
  state: CheckpointStateInput;
  /** Also keep this checkpoint as checkpoints/epoch-<NNNN>.safetensors. */
  keep?: boolean;
  /** After writing, delete epoch files beyond the newest `keepLast`. */
  keepLast?: number;
}

export function checkpointDir(runDir: string): string {
  return join(runDir, CHECKPOINT_DIR);
}

export function epochCheckpointName(epoch: number): string {
  return `epoch-${String(epoch).padStart(4, '0')}.safetensors`;
}

/** Reads a tfjs variable (or momentum buffer) into PyTorch layout. */
async function torchData(variable: tf.Tensor, param: Param): Promise<{ shape: number[]; data: Float32Array }> {
  const perm = toTorchPerm(param.layout, variable.rank);
  const values = await variable.data();
  if (!(values instanceof Float32Array)) throw new Error(`parameter ${param.name} is ${variable.dtype}, expected float32`);
  // Backends may hand out their own storage; a copy (permuteArray makes one) keeps the file contents
  // fixed even if the training loop resumes while the write is still in flight.
  return { shape: permuteShape(variable.shape, perm), data: perm ? permuteArray(values, variable.shape, perm) : values.slice() };
}

function archInfo(state: CheckpointStateInput, store: ParamStore): ArchInfo {
  if (state.arch) return state.arch;
  const m = state.config.model;
  return { arch: m.arch, stem: m.stem, width: m.width, params: store.count() };
}

/**
 * F16 for a trainable weight unless a finite value is beyond the half range (it would be stored as
 * Inf): such a tensor stays F32 rather than be corrupted. Loading accepts either per tensor.
 */
function storedDtype(data: Float32Array, wanted: WeightDtype): WeightDtype {
  if (wanted === 'F32') return 'F32';
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    if (Number.isFinite(v) && Math.abs(v) > HALF_MAX) return 'F32';
  }
  return 'F16';
}

/**
 * The tensors of a checkpoint. With weightDtype F16 only the trainable weights are halved: BN running
 * statistics (running_var can exceed the half range and accumulates small updates) and momentum
 * buffers stay F32, so the optimiser state resumes exactly. The weights themselves resume rounded to
 * half (relative error <= 2^-11), which is the price of the smaller file.
 */
export async function checkpointTensors(store: ParamStore, optimizer?: Sgd, weightDtype: WeightDtype = 'F32'): Promise<TensorToWrite[]> {
  const tensors: TensorToWrite[] = [];
  for (const p of store.list()) {
    const { shape, data } = await torchData(p.variable, p);
    tensors.push({ name: p.name, dtype: p.trainable ? storedDtype(data, weightDtype) : 'F32', shape, data });
  }
  if (optimizer) {
    for (const p of store.list()) {
      const buf = optimizer.buffers.get(p.name);
      if (!buf) continue;
      const { shape, data } = await torchData(buf, p);
      tensors.push({ name: MOMENTUM_PREFIX + p.name, dtype: 'F32', shape, data });
    }
  }
  return tensors;
}

/**
 * Writes checkpoints/last.safetensors (and the epoch file when `keep`) and returns the path of `last`.
 * The epoch file goes first so that `last` is never older than any epoch file, even after a crash
 * between the two writes.
 */
export async function saveCheckpoint(runDir: string, opts: SaveCheckpointOptions): Promise<string> {
  const { store, optimizer, state } = opts;
  const full: CheckpointState = {
    format: CHECKPOINT_FORMAT,
    epoch: state.epoch,
    step: state.step,
    config: state.config,
    normalization: state.normalization,
    arch: archInfo(state, store),
    engine: state.engine,
    created: state.created ?? new Date().toISOString(),
    metrics: state.metrics ?? {},
    ...(state.running ? { running: state.running } : {}),
    ...(state.loss_scaling ? { loss_scaling: state.loss_scaling } : {}),
  };
  const weightDtype: WeightDtype = state.config.train.save_dtype === 'f16' ? 'F16' : 'F32';
  const chunks = encodeSafetensors(await checkpointTensors(store, optimizer, weightDtype), {
    format: 'pt',
    [METADATA_KEY]: JSON.stringify(full),
  });
  const dir = checkpointDir(runDir);
  if (opts.keep) await writeFileAtomic(join(dir, epochCheckpointName(state.epoch)), chunks);
  const last = join(dir, LAST_CHECKPOINT);
  await writeFileAtomic(last, chunks);
  if (opts.keepLast !== undefined) await pruneCheckpoints(runDir, opts.keepLast);
  return last;
}

/** Epoch checkpoint files of a run, oldest first. */
export function listEpochCheckpoints(runDir: string): { epoch: number; path: string }[] {
  const dir = checkpointDir(runDir);
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .map((name) => ({ name, m: EPOCH_FILE.exec(name) }))
    .filter((e): e is { name: string; m: RegExpExecArray } => e.m !== null)
    .map(({ name, m }) => ({ epoch: Number(m[1]), path: join(dir, name) }))
    .sort((a, b) => a.epoch - b.epoch);
}

/** Deletes epoch-* files beyond the newest `keepLast`; `last` is never touched. Returns deleted paths. */
export async function pruneCheckpoints(runDir: string, keepLast: number): Promise<string[]> {
  if (!Number.isInteger(keepLast) || keepLast < 0) throw new RangeError(`keepLast must be >= 0, got ${keepLast}`);
  const files = listEpochCheckpoints(runDir);
  const doomed = files.slice(0, Math.max(0, files.length - keepLast)).map((f) => f.path);
  for (const path of doomed) await rm(path, { force: true });
  return doomed;
}

/**
 * Accepts the .safetensors file, the same path without its extension (runs/x/checkpoints/last), a run
 * directory (-> checkpoints/last.safetensors) or a run's checkpoints directory.
 */
export function resolveCheckpointPath(p: string): string {
  if (isFile(p)) return p;
  if (isFile(`${p}.safetensors`)) return `${p}.safetensors`;
  if (isDirectory(p)) {
    const inRun = join(p, CHECKPOINT_DIR, LAST_CHECKPOINT);
    if (isFile(inRun)) return inRun;
    const inDir = join(p, LAST_CHECKPOINT);
    if (isFile(inDir)) return inDir;
    throw new InputFileError(p, `no checkpoint here (expected ${inRun})`);
  }
  throw new InputFileError(
    p,
    'no checkpoint here (expected a .safetensors file, the same path without extension, or a run directory)',
  );
}

/** The run directory of a checkpoint file (the folder above checkpoints/), else the file's own folder. */
export function checkpointHome(checkpointFile: string): string {
  const dir = dirname(checkpointFile);
  return basename(dir) === CHECKPOINT_DIR ? dirname(dir) : dir;
}

export interface LoadedCheckpoint {
  state: CheckpointState;
  file: SafetensorsFile;
}

function describeZodError(err: z.ZodError): string {
  const issues = err.issues.slice(0, 3).map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
  const more = err.issues.length > 3 ? ` (+${err.issues.length - 3} more)` : '';
  return issues.join('; ') + more;
}

/** Parses the simtrip metadata of a safetensors file; null when the file is not a simtrip checkpoint. */
export function checkpointStateOf(file: SafetensorsFile): CheckpointState | null {
  const text = file.metadata[METADATA_KEY];
  if (text === undefined) return null;
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new InputFileError(file.path, `checkpoint metadata is not valid JSON (${(err as Error).message})`);
  }
  const format = (json as { format?: unknown } | null)?.format;
  if (typeof format === 'number' && format > CHECKPOINT_FORMAT) {
    throw new InputFileError(
      file.path,
      `checkpoint format ${format} was written by a newer simtrip (this version reads format ${CHECKPOINT_FORMAT})`,
    );
  }
  const parsed = CheckpointStateSchema.safeParse(json);
  if (!parsed.success) {
    throw new InputFileError(file.path, `checkpoint metadata is invalid: ${describeZodError(parsed.error)}`);
  }
  return parsed.data;
}

export async function readCheckpoint(path: string): Promise<LoadedCheckpoint> {
  const resolved = resolveCheckpointPath(path);
  const wrongKind = notACheckpoint(resolved);
  if (wrongKind) throw wrongKind;
  const file = await readSafetensors(resolved);
  const state = checkpointStateOf(file);
  if (!state) {
    throw new InputFileError(
      resolved,
      "not a simtrip checkpoint (no 'simtrip' metadata); pretrained weights go in model.weights",
    );
  }
  return { state, file };
}

interface PlannedTensor {
  param: Param;
  key: string;
}

export interface RestoreReport {
  /** Tensors in the file that the model (and the optimizer, when given) did not use. */
  unexpected: string[];
  /** Momentum buffers restored. */
  momentum: number;
}

function checkFloat(file: TensorFile, key: string): void {
  const { dtype } = file.info(key);
  if (dtype !== 'F32' && dtype !== 'F16' && dtype !== 'BF16' && dtype !== 'F64') {
    throw new InputFileError(file.path, `tensor '${key}' is ${dtype}, expected a float type`);
  }
}

/** Reads a file tensor (PyTorch layout) as a tfjs tensor in the param's layout. */
export function tensorFromTorch(file: TensorFile, key: string, param: Param): tf.Tensor {
  checkFloat(file, key);
  const shape = [...file.info(key).shape];
  const data = file.getFloat32(key);
  const perm = fromTorchPerm(param.layout, shape.length);
  return tf.tensor(perm ? permuteArray(data, shape, perm) : data, permuteShape(shape, perm), 'float32');
}

/**
 * Loads every parameter (and momentum buffer, when an optimizer is given) from a checkpoint. Strict:
 * nothing is assigned unless every model parameter is present with the right shape.
 */
export function restoreCheckpoint(ckpt: LoadedCheckpoint, store: ParamStore, optimizer?: Sgd): RestoreReport {
  const { file } = ckpt;
  const used = new Set<string>();
  const missing: string[] = [];
  const mismatched: string[] = [];
  const plan: PlannedTensor[] = [];
  const momentum: PlannedTensor[] = [];

  const check = (param: Param, key: string, out: PlannedTensor[], required: boolean) => {
    if (!file.has(key)) {
      if (required) missing.push(key);
      return;
    }
    used.add(key);
    const expected = permuteShape(param.variable.shape, toTorchPerm(param.layout, param.variable.rank));
    const shape = file.info(key).shape;
    if (!sameShape(shape, expected)) {
      mismatched.push(`${key} (file ${shapeText(shape)}, model ${shapeText(expected)})`);
      return;
    }
    out.push({ param, key });
  };

  for (const p of store.list()) check(p, p.name, plan, true);
  if (optimizer) for (const p of store.trainable()) check(p, MOMENTUM_PREFIX + p.name, momentum, false);

  if (missing.length > 0 || mismatched.length > 0) {
    const parts: string[] = [];
    if (missing.length > 0) parts.push(`${missing.length} missing: ${listSome(missing)}`);
    if (mismatched.length > 0) parts.push(`${mismatched.length} with other shapes: ${listSome(mismatched, 3)}`);
    throw new InputFileError(file.path, `checkpoint does not match the model (${parts.join('; ')})`);
  }

  // Decode everything before assigning anything, so a read error cannot leave a half-restored model.
  const values = plan.map(({ param, key }) => tensorFromTorch(file, key, param));
  const buffers = momentum.map(({ param, key }) => tensorFromTorch(file, key, param));
  plan.forEach(({ param }, i) => {
    param.variable.assign(values[i]!);
    values[i]!.dispose();
  });
  if (optimizer) {
    // loadBuffers keeps its own reference to each value (a variable shares the data), so ours can go.
    optimizer.loadBuffers(new Map(momentum.map(({ param }, i) => [param.name, buffers[i]!])));
  }
  buffers.forEach((b) => b.dispose());
  return {
    unexpected: file.names().filter((n) => !used.has(n) && (optimizer !== undefined || !n.startsWith('optimizer.'))),
    momentum: momentum.length,
  };
}
