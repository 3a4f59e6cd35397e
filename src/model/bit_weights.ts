/**
 * Official BiT .npz checkpoints (resnet/root_block/standardized_conv2d/kernel, ...) onto BitResNet's
 * timm-style parameter names. Kernels are HWIO in both, so they load without a transpose; the head's
 * 1x1 conv kernel [1, 1, C, K] becomes the linear weight [C, K].
 *
 * Shapes are checked from the .npy headers before any array is read, and an array is read only when
 * a model parameter needs it: a model without classifier never touches the head (179 MB in BiT-M).
 * Loading is all-or-nothing: every parameter the file should provide must be there with its shape,
 * otherwise an InputFileError lists what is wrong and nothing is assigned.
 *
 * What the file should provide depends on the model:
 *   GroupNorm model   every parameter (the head only when the model has one)
 *   BatchNorm model   only the weight-standardised conv kernels; norms (and the head) stay new, as in
 *                     BiT-SimSiam: GroupNorm's per-sample gamma/beta mean nothing to a BatchNorm
 *   CIFAR stem        the 3x3 stem stays new: the file's root kernel is 7x7
 */
import { tf } from '../engine/tf.js';
import { openNpz, type NpzFile } from '../io/npz.js';
import { listSome, shapeText } from '../util/text.js';
import { InputFileError } from '../util/errors.js';
import { bitArchOf } from './build.js';
import { onlyKernelSizeDiffers, type Param, type ParamStore } from './params.js';
import type { WeightsMismatch, WeightsReport } from './weights.js';
import { sameShape } from '../util/values.js';

export interface LoadBitOptions {
  /** Prefix of the backbone's parameter names in the store (default "backbone."). */
  prefix?: string;
  /** Leave shape-mismatched parameters new (reported in `mismatched`) instead of failing. */
  skipMismatched?: boolean;
}

const NORM_CONV = ['a', 'b', 'c'] as const;

/**
 * The BiT npz key for a BitResNet parameter name (without prefix), or null when it has none.
 *   stem.conv.weight                      resnet/root_block/standardized_conv2d/kernel
 *   stages.S.blocks.J.normK.{weight,bias} resnet/block{S+1}/unit{J+1:02}/{a,b,c}/group_norm/{gamma,beta}
 *   stages.S.blocks.J.convK.weight        resnet/block{S+1}/unit{J+1:02}/{a,b,c}/standardized_conv2d/kernel
 *   stages.S.blocks.J.downsample.conv.weight  .../a/proj/standardized_conv2d/kernel
 *   norm.{weight,bias}                    resnet/group_norm/{gamma,beta}
 *   head.fc.{weight,bias}                 resnet/head/conv2d/{kernel,bias}
 * BiT's pre-activation unit applies `a/group_norm` to the unit's input before conv `a`, so the file's
 * a/b/c norms are the norms in front of conv a/b/c: norm1/norm2/norm3.
 */
export function bitKeyFor(name: string): string | null {
  const gn = (p: string) => (p === 'weight' ? 'gamma' : 'beta');
  if (name === 'stem.conv.weight') return 'resnet/root_block/standardized_conv2d/kernel';
  let m = /^norm\.(weight|bias)$/.exec(name);
  if (m) return `resnet/group_norm/${gn(m[1]!)}`;
  m = /^head\.fc\.(weight|bias)$/.exec(name);
  if (m) return `resnet/head/conv2d/${m[1] === 'weight' ? 'kernel' : 'bias'}`;
  m = /^stages\.(\d+)\.blocks\.(\d+)\.(.+)$/.exec(name);
  if (!m) return null;
  const unit = `resnet/block${Number(m[1]) + 1}/unit${String(Number(m[2]) + 1).padStart(2, '0')}`;
  const rest = m[3]!;
  if (rest === 'downsample.conv.weight') return `${unit}/a/proj/standardized_conv2d/kernel`;
  m = /^norm([123])\.(weight|bias)$/.exec(rest);
  if (m) return `${unit}/${NORM_CONV[Number(m[1]) - 1]}/group_norm/${gn(m[2]!)}`;
  m = /^conv([123])\.weight$/.exec(rest);
  if (m) return `${unit}/${NORM_CONV[Number(m[1]) - 1]}/standardized_conv2d/kernel`;
  return null;
}

/** What a BiT (or timm resnetv2 BiT) file holds, read from names and shapes alone. */
export interface BitLayout {
  /** Units per stage. */
  depths: number[];
  /** Root width before the width factor: BiT's 64, or the root width of a narrow simtrip model. */
  width: number;
  widthFactor: number;
  /** Root conv kernel size: 7 for BiT's root, 3 for the CIFAR stem. */
  rootKernel: number;
  /** Classes of the head, when the file has one. */
  numClasses?: number;
  /** Known for state dicts: 'batch' when the norms carry running statistics. */
  norm?: 'group' | 'batch';
}

/** Root conv channels as (width, width factor): 64 x wf at BiT's widths, else a narrow width x 1. */
export function splitRootWidth(channels: number): { width: number; widthFactor: number } {
  return channels % 64 === 0 ? { width: 64, widthFactor: channels / 64 } : { width: channels, widthFactor: 1 };
}

/** Units per stage from "<stage>/<unit>" index pairs (either numbering base), e.g. [3, 4, 6, 3]. */
export function depthsOf(pairs: Iterable<[stage: number, unit: number]>): number[] {
  const units = new Map<number, Set<number>>();
  for (const [s, u] of pairs) units.set(s, (units.get(s) ?? new Set()).add(u));
  return [...units.keys()].sort((a, b) => a - b).map((s) => units.get(s)!.size);
}

const ROOT_KEY = 'resnet/root_block/standardized_conv2d/kernel';
const HEAD_KEY = 'resnet/head/conv2d/kernel';

/** The layout of an official BiT npz (keys "resnet/..."), or null when the keys are not BiT's. */
export function bitNpzLayout(keys: readonly string[], shapeOf: (key: string) => readonly number[]): BitLayout | null {
  if (!keys.includes(ROOT_KEY)) return null;
  const units: [number, number][] = [];
  for (const k of keys) {
    const m = /^resnet\/block(\d+)\/unit(\d+)\//.exec(k);
    if (m) units.push([Number(m[1]), Number(m[2])]);
  }
  const root = shapeOf(ROOT_KEY); // HWIO
  const head = keys.includes(HEAD_KEY) ? shapeOf(HEAD_KEY) : undefined; // [1, 1, C, K]
  return {
    depths: depthsOf(units),
    ...splitRootWidth(root[3]!),
    rootKernel: root[0]!,
    numClasses: head ? head[head.length - 1] : undefined,
  };
}

/** "BiT ResNet-v2 R50x1 (depths 3,4,6,3, width factor 1, head 21843 classes)". */
export function describeBitLayout(l: BitLayout): string {
  const depth = 3 * l.depths.reduce((a, b) => a + b, 0) + 2;
  const parts = [`depths ${l.depths.join(',')}`, `width factor ${l.widthFactor}`];
  if (l.width !== 64) parts.push(`root width ${l.width}`);
  if (l.rootKernel !== 7) parts.push(`${l.rootKernel}x${l.rootKernel} stem`);
  if (l.norm === 'batch') parts.push('BatchNorm');
  parts.push(l.numClasses === undefined ? 'no head' : `head ${l.numClasses} classes`);
  return `BiT ResNet-v2 R${depth}x${l.widthFactor} (${parts.join(', ')})`;
}

/** The config keys that build this layout ("model.arch: bit-r50x1", ...), or why no arch does. */
export function bitConfigLines(l: BitLayout): string[] {
  const arch = bitArchOf(l.depths, l.widthFactor);
  if (!arch) return [`no model.arch has depths ${l.depths.join(',')} with width factor ${l.widthFactor}`];
  const lines = [`model.arch: ${arch}`, `model.stem: ${l.rootKernel === 3 ? 'cifar' : 'imagenet'}`];
  if (l.width !== 64) lines.push(`model.width: ${l.width}`);
  if (l.norm === 'batch') lines.push('model.norm: batch');
  return lines;
}

/** In the BatchNorm variant only the standardised conv kernels transfer (stem, convs, projections). */
function transfers(local: string, batchNorm: boolean): boolean {
  return !batchNorm || /(^|\.)conv\d?\.weight$/.test(local);
}

interface Plan {
  pending: { param: Param; key: string }[];
  used: Set<string>;
  missing: string[];
  mismatched: WeightsMismatch[];
}

function planBitLoad(npz: NpzFile, store: ParamStore, prefix: string): Plan {
  const fileKeys = new Set(npz.names());
  // BatchNorm layers carry running statistics; GroupNorm layers do not.
  const batchNorm = store.has(`${prefix}norm.running_mean`);
  const plan: Plan = { pending: [], used: new Set(), missing: [], mismatched: [] };
  for (const param of store.list()) {
    if (!param.name.startsWith(prefix)) continue;
    const local = param.name.slice(prefix.length);
    if (!transfers(local, batchNorm)) continue;
    const key = bitKeyFor(local);
    if (!key || !fileKeys.has(key)) {
      plan.missing.push(key ? `${param.name} (${key})` : `${param.name} (no BiT counterpart)`);
      continue;
    }
    const { shape, dtype } = npz.info(key);
    if (!dtype.startsWith('float')) throw new InputFileError(npz.path, `array '${key}' is ${dtype}, expected floats`);
    const modelShape = [...param.variable.shape];
    // The head is a 1x1 conv [1, 1, C, K] in the file and a linear [C, K] in the model.
    const expected = local === 'head.fc.weight' ? [1, 1, ...modelShape] : modelShape;
    if (local === 'stem.conv.weight' && onlyKernelSizeDiffers(shape, expected, 'tfjs')) continue; // CIFAR stem
    plan.used.add(key);
    if (!sameShape(shape, expected)) {
      plan.mismatched.push({ name: param.name, file: [...shape], model: expected });
      continue;
    }
    plan.pending.push({ param, key });
  }
  return plan;
}

function fileHint(npz: NpzFile): string {
  const layout = bitNpzLayout(npz.names(), (k) => npz.info(k).shape);
  return layout ? `; the file holds ${describeBitLayout(layout)} (${bitConfigLines(layout).join(', ')})` : '';
}

/**
 * Loads a BiT .npz into the BitResNet whose parameters sit under `prefix`. The report's `missing`
 * lists every store parameter left at its initialisation (heads, norms of the BatchNorm variant, a
 * CIFAR stem); `ignored` the file arrays no parameter used (never read).
 */
export async function loadBitNpz(store: ParamStore, path: string, opts: LoadBitOptions = {}): Promise<WeightsReport> {
  const prefix = opts.prefix ?? 'backbone.';
  const npz = await openNpz(path);
  if (!npz.names().some((k) => k.startsWith('resnet/'))) {
    throw new InputFileError(path, `not a BiT checkpoint: no 'resnet/...' arrays (holds ${listSome(npz.names(), 4) || 'nothing'})`);
  }
  const { pending, used, missing, mismatched } = planBitLoad(npz, store, prefix);

  const problems: string[] = [];
  if (missing.length) problems.push(`missing ${missing.length} parameter(s): ${listSome(missing, 8)}`);
  if (mismatched.length && !opts.skipMismatched) {
    const items = mismatched.map((m) => `${bitKeyFor(m.name.slice(prefix.length))}: file ${shapeText(m.file)}, model ${m.name} ${shapeText(m.model)}`);
    problems.push(`${mismatched.length} shape mismatch(es): ${listSome(items, 8)}`);
  }
  if (problems.length) throw new InputFileError(path, `not a BiT checkpoint for this model: ${problems.join('; ')}${fileHint(npz)}`);

  // Decode everything before assigning anything, so a corrupt member leaves the model untouched.
  const values = pending.map(({ key }) => npz.read(key).toFloat32());
  pending.forEach(({ param }, i) => {
    const t = tf.tensor(values[i]!, param.variable.shape, 'float32');
    param.variable.assign(t);
    t.dispose();
  });
  const loaded = new Set(pending.map((p) => p.param.name));
  return {
    path,
    loaded: [...loaded],
    missing: store
      .list()
      .map((p) => p.name)
      .filter((n) => !loaded.has(n)),
    ignored: npz.names().filter((k) => !used.has(k)),
    mismatched: opts.skipMismatched ? mismatched : [],
  };
}
