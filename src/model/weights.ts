/**
 * Pretrained initialisation (model.weights), the single entry point for every weight file:
 *   .npz          official BiT checkpoints, into a BiT model (bit_weights.ts)
 *   .safetensors  simtrip checkpoints, torchvision/timm ResNet and timm resnetv2_*_bit state dicts,
 *                 and released SSL checkpoints whose backbone sits behind a prefix ("module.encoder.",
 *                 "backbone.", ...), loaded by parameter name
 *   .pth .pth.tar .pt .ckpt .bin   torch.save checkpoints (read without Python, nothing in them
 *                 executed: src/io/torch_file.ts), their released layout recognised (SimSiam, MoCo,
 *                 DINO, Lightning, ...: released_layouts.ts), then loaded by name like safetensors
 * Loading is all-or-nothing and loud: shape mismatches and files that match nothing in the backbone
 * are errors, because silently training from scratch wastes a run.
 *
 * Two deliberate exceptions leave a parameter new instead of failing: a stem whose kernel differs only
 * in size (a CIFAR stem against a 7x7 file), and BatchNorm affine parameters offered by a file without
 * running statistics for them (a GroupNorm's gamma/beta, e.g. timm BiT into the BatchNorm variant).
 */
import { extname } from 'node:path';
import { tf } from '../engine/tf.js';
import { readSafetensors } from '../io/safetensors.js';
import type { TensorFile } from '../io/tensor_file.js';
import { resolveCheckpointPath, tensorFromTorch } from '../train/checkpoint.js';
import { listSome, shapeText } from '../util/text.js';
import { InputFileError } from '../util/errors.js';
import { BACKBONE_PREFIX } from './build.js';
import { bitConfigLines, bitNpzLayout, describeBitLayout, loadBitNpz } from './bit_weights.js';
import { onlyKernelSizeDiffers, permuteShape, toTorchPerm, type Param, type ParamStore } from './params.js';
import { openNpz } from '../io/npz.js';
import { isDirectory, isFile } from '../util/fs.js';
import { sameShape } from '../util/values.js';
import { isTorchCheckpointPath, openTorchStateDict, withBackboneNames } from './state_dicts.js';

export interface WeightsMismatch {
  name: string;
  /** Shape in the file (PyTorch layout; HWIO for BiT .npz). */
  file: number[];
  /** The model's shape, in the file's layout so the two compare directly. */
  model: number[];
}

export interface WeightsReport {
  path: string;
  /** Model parameters assigned from the file. */
  loaded: string[];
  /** Model parameters the file does not provide: they keep their fresh initialisation. */
  missing: string[];
  /** File tensors that map onto no model parameter. */
  ignored: string[];
  /** Only non-empty with skipMismatched; otherwise a mismatch is an error. */
  mismatched: WeightsMismatch[];
}

export interface LoadWeightsOptions {
  /** Prefix of the backbone's parameter names in the store (default "backbone."). */
  prefix?: string;
  /** Model architecture, for error messages (e.g. "resnet18"). */
  arch?: string;
  /** Leave shape-mismatched parameters newly initialised instead of failing. */
  skipMismatched?: boolean;
}

/**
 * Prefixes released checkpoints put in front of the backbone's torchvision names, most specific
 * first. "encoder_q." is MoCo's query encoder.
 */
const SOURCE_PREFIXES = ['module.encoder.', 'module.encoder_q.', 'module.', 'backbone.', 'encoder.', 'encoder_q.'];

/** Tensors that are state, not weights, in every format we read. */
function isAlwaysIgnored(key: string): boolean {
  return key.endsWith('num_batches_tracked') || key.startsWith('optimizer.');
}

/** Model names a file key may stand for, in order of preference. */
function candidates(key: string, prefix: string): string[] {
  const out = [key];
  let rest = key;
  for (;;) {
    out.push(prefix + rest);
    const p = SOURCE_PREFIXES.find((s) => rest.startsWith(s));
    if (!p) return out;
    rest = rest.slice(p.length);
  }
}

/** A guess at what a state dict holds, for the "nothing matched" error. */
export function describeStateDict(keys: readonly string[]): string {
  const useful = keys.filter((k) => !isAlwaysIgnored(k));
  const has = (re: RegExp) => useful.some((k) => re.test(k));
  let kind = 'an unrecognised model';
  const timmBit = has(/(^|\.)stem\.conv\.weight$/) && has(/(^|\.)stages\.\d+\.blocks\.\d+\.norm1\.weight$/);
  if (has(/(^|\.)layer\d+\.\d+\.conv3\.weight$/)) kind = 'a ResNet with bottleneck blocks (resnet50-style)';
  else if (has(/(^|\.)layer\d+\.\d+\.conv2\.weight$/)) kind = 'a ResNet with basic blocks (resnet18-style)';
  else if (has(/root_block|block\d+\/unit\d+/)) kind = 'a BiT ResNet-v2';
  else if (timmBit) kind = 'a timm ResNet-v2 (resnetv2_*_bit names; model.arch bit-*)';
  else if (has(/(^|\.)(patch_embed|blocks\.\d+\.attn)/)) kind = 'a vision transformer';
  else if (has(/(^|\.)stages\.\d+/)) kind = 'a ConvNeXt/timm stage model';
  else if (has(/(^|\.)features\.\d+/)) kind = 'a VGG/DenseNet/MobileNet-style "features" model';
  const conv1 = useful.find((k) => /(^|\.)conv1\.weight$/.test(k) && !/layer/.test(k));
  const lead = conv1 ? conv1.slice(0, conv1.length - 'conv1.weight'.length) : '';
  const behind = lead ? ` behind prefix '${lead}'` : '';
  return `${kind}${behind} (keys like ${listSome(useful.length > 0 ? useful : keys, 4)})`;
}

interface Assignment {
  param: Param;
  key: string;
}

/** timm's BiT head is a 1x1 conv [K, C, 1, 1] where simtrip has a linear layer ([K, C] in PyTorch layout). */
function isConvHeadForLinear(param: Param, fileShape: readonly number[]): boolean {
  return param.layout === 'linear' && fileShape.length === 4 && fileShape[2] === 1 && fileShape[3] === 1;
}

/**
 * A BatchNorm weight/bias whose file lacks the layer's running statistics: the file's layer is a
 * GroupNorm (BiT), whose per-sample affine parameters do not carry over to a BatchNorm.
 */
function isNormWithoutStats(file: TensorFile, store: ParamStore, key: string, name: string): boolean {
  const m = /^(.*)\.(weight|bias)$/.exec(name);
  const k = /^(.*)\.(weight|bias)$/.exec(key);
  return m !== null && k !== null && store.has(`${m[1]}.running_mean`) && !file.has(`${k[1]}.running_mean`);
}

/** Reads a file tensor into the param's layout, reshaping a 1x1 conv head into a linear weight. */
function readParam(file: TensorFile, key: string, param: Param): tf.Tensor {
  const shape = file.info(key).shape;
  if (!isConvHeadForLinear(param, shape)) return tensorFromTorch(file, key, param);
  const asConv = tensorFromTorch(file, key, { ...param, layout: 'vector' });
  const out = tf.tidy(() => tf.transpose(tf.reshape(asConv, [shape[0]!, shape[1]!])));
  asConv.dispose();
  return out;
}

function planLoad(file: TensorFile, store: ParamStore, opts: LoadWeightsOptions) {
  const prefix = opts.prefix ?? BACKBONE_PREFIX;
  const assignments: Assignment[] = [];
  const claimed = new Set<string>();
  const ignored: string[] = [];
  const mismatched: WeightsMismatch[] = [];
  for (const key of file.names()) {
    if (isAlwaysIgnored(key)) {
      ignored.push(fileName(file, key));
      continue;
    }
    const name = candidates(key, prefix).find((c) => store.has(c));
    // A second file key for the same parameter (e.g. both "conv1.weight" and "backbone.conv1.weight")
    // is ambiguous; the first one in file order wins.
    if (name === undefined || claimed.has(name)) {
      ignored.push(fileName(file, key));
      continue;
    }
    claimed.add(name);
    const param = store.get(name);
    const modelShape = permuteShape(param.variable.shape, toTorchPerm(param.layout, param.variable.rank));
    const fileShape = [...file.info(key).shape];
    const isStem = name === `${prefix}conv1.weight` || name === `${prefix}stem.conv.weight`;
    if ((isStem && onlyKernelSizeDiffers(fileShape, modelShape, 'torch')) || isNormWithoutStats(file, store, key, name)) {
      ignored.push(fileName(file, key));
      continue;
    }
    const comparable = isConvHeadForLinear(param, fileShape) ? fileShape.slice(0, 2) : fileShape;
    if (!sameShape(comparable, modelShape)) {
      mismatched.push({ name, file: fileShape, model: modelShape });
      continue;
    }
    const { dtype } = file.info(key);
    if (dtype !== 'F32' && dtype !== 'F16' && dtype !== 'BF16' && dtype !== 'F64') {
      throw new InputFileError(file.path, `tensor '${key}' is ${dtype}, expected a float type for ${name}`);
    }
    assignments.push({ param, key });
  }
  return { prefix, assignments, ignored, mismatched };
}

/** The file behind model.weights: the path itself, or a simtrip run or checkpoint as `--resume` takes it. */
export function resolveWeightsPath(path: string): string {
  if (isFile(path)) return path;
  // model.weights may point at a simtrip run or checkpoint the same way `--resume` does.
  try {
    return resolveCheckpointPath(path);
  } catch (err) {
    if (isDirectory(path)) throw err;
    throw new InputFileError(path, 'no such file');
  }
}

/**
 * Loads pretrained weights into `store` by name. Throws InputFileError on shape mismatches (unless
 * skipMismatched) and when nothing in the file matches the backbone.
 */
export async function loadWeights(
  store: ParamStore,
  path: string,
  opts: LoadWeightsOptions = {},
): Promise<WeightsReport> {
  const resolved = resolveWeightsPath(path);
  const ext = extname(resolved).toLowerCase();
  if (ext === '.npz') return loadNpzWeights(store, resolved, opts);
  if (isTorchCheckpointPath(resolved)) return loadSafetensorsWeights(store, (await openTorchStateDict(resolved)).tensors, opts);
  if (ext !== '.safetensors') {
    throw new InputFileError(
      resolved,
      `unsupported weights format '${ext || '(no extension)'}' (expected .safetensors, a BiT .npz, or a torch.save file: .pth, .pth.tar, .pt, .ckpt, .bin)`,
    );
  }
  return loadSafetensorsWeights(store, withBackboneNames(await readSafetensors(resolved)).tensors, opts);
}

/** A tensor's name in the file itself (a renamed view shows the backbone under simtrip's names). */
function fileName(file: TensorFile, name: string): string {
  return file.fileName?.(name) ?? name;
}

function fileNames(file: TensorFile): string[] {
  return file.names().map((n) => fileName(file, n));
}

/**
 * The by-name half of loadWeights, for a state dict already open: a .safetensors file (eval reads a
 * checkpoint's metadata first to build its model, then loads the weights from the same file) or any
 * TensorFile.
 */
export function loadSafetensorsWeights(store: ParamStore, file: TensorFile, opts: LoadWeightsOptions = {}): WeightsReport {
  const resolved = file.path;
  const { prefix, assignments, ignored, mismatched } = planLoad(file, store, opts);

  if (mismatched.length > 0 && !opts.skipMismatched) {
    const items = mismatched.map((m) => `${m.name} (file ${shapeText(m.file)}, model ${shapeText(m.model)})`);
    const arch = opts.arch ? ` ${opts.arch}` : '';
    throw new InputFileError(
      resolved,
      `weights do not fit the${arch} model: ${mismatched.length} shape mismatch(es): ${listSome(items, 3)}; the file holds ${describeStateDict(fileNames(file))}`,
    );
  }
  const backboneLoaded = assignments.some((a) => a.param.name.startsWith(prefix));
  const backboneExists = store.list().some((p) => p.name.startsWith(prefix));
  if (backboneExists && !backboneLoaded) {
    const arch = opts.arch ? ` (${opts.arch})` : '';
    throw new InputFileError(
      resolved,
      `no tensor matches the model's backbone${arch}; the file looks like ${describeStateDict(fileNames(file))}`,
    );
  }

  // Decode all before assigning any, so an unreadable tensor leaves the model untouched.
  const values = assignments.map(({ param, key }) => readParam(file, key, param));
  assignments.forEach(({ param }, i) => {
    param.variable.assign(values[i]!);
  });
  tf.dispose(values);

  const loaded = new Set(assignments.map((a) => a.param.name));
  return {
    path: resolved,
    loaded: [...loaded],
    missing: store
      .list()
      .map((p) => p.name)
      .filter((n) => !loaded.has(n)),
    ignored,
    mismatched,
  };
}

/** BiT .npz files fit only BiT models; for any other, say which model.arch the file wants. */
async function loadNpzWeights(store: ParamStore, path: string, opts: LoadWeightsOptions): Promise<WeightsReport> {
  const prefix = opts.prefix ?? BACKBONE_PREFIX;
  if (!store.has(`${prefix}stem.conv.weight`)) {
    const npz = await openNpz(path);
    const layout = bitNpzLayout(npz.names(), (k) => npz.info(k).shape);
    const arch = opts.arch ? `model.arch ${opts.arch}` : 'this model.arch (a BatchNorm ResNet)';
    const wanted = layout ? `the file holds ${describeBitLayout(layout)}: set ${bitConfigLines(layout).join(', ')}` : 'set model.arch to a bit-* architecture';
    throw new InputFileError(path, `BiT .npz weights need a BiT model, not ${arch}; ${wanted}`);
  }
  return loadBitNpz(store, path, { prefix, skipMismatched: opts.skipMismatched });
}

/** A few lines for the run log: counts and the first names of each list. */
export function formatWeightsReport(report: WeightsReport): string {
  const lines = [`loaded ${report.loaded.length} tensors from ${report.path}`];
  if (report.missing.length > 0) {
    // Heads left new are expected and summarised per module; backbone gaps are listed by name since
    // they usually mean the file is not the model the user thinks it is.
    const groups = new Map<string, number>();
    const backbone: string[] = [];
    for (const name of report.missing) {
      if (name.startsWith(BACKBONE_PREFIX)) backbone.push(name);
      else {
        const head = name.split('.')[0]!;
        groups.set(head, (groups.get(head) ?? 0) + 1);
      }
    }
    const parts = [...groups].map(([g, n]) => `${g}.* (${n})`);
    if (backbone.length > 0) parts.push(`backbone: ${listSome(backbone, 4)}`);
    lines.push(`  newly initialised (${report.missing.length}): ${parts.join(', ')}`);
  }
  const notable = report.ignored.filter((k) => !isAlwaysIgnored(k));
  const routine = report.ignored.length - notable.length;
  if (report.ignored.length > 0) {
    const detail = notable.length > 0 ? `: ${listSome(notable, 4)}` : '';
    const extra = routine > 0 ? `${notable.length > 0 ? ' +' : ' '}${routine} optimizer/num_batches_tracked` : '';
    lines.push(`  ignored from file (${report.ignored.length})${detail}${extra}`);
  }
  if (report.mismatched.length > 0) {
    const items = report.mismatched.map((m) => `${m.name} file ${shapeText(m.file)} vs model ${shapeText(m.model)}`);
    lines.push(`  shape mismatch, left new (${report.mismatched.length}): ${listSome(items, 3)}`);
  }
  return lines.join('\n');
}
