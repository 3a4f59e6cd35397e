/**
 * `simtrip weights inspect FILE`: what a weight file holds and the config lines that use it. Reads
 * headers only (the safetensors JSON header; the zip directory and each .npy header; a torch.save
 * file's pickles), never tensor data, so it answers at once even for multi-GB files.
 */
import { statSync } from 'node:fs';
import { extname } from 'node:path';
import { openNpz } from '../io/npz.js';
import { readSafetensors } from '../io/safetensors.js';
import { DTYPE_BYTES } from '../io/dtype.js';
import { PyRecord, TorchTensor, type TorchStorage } from '../io/torch_pickle.js';
import { checkpointStateOf, type CheckpointState } from '../train/checkpoint.js';
import { InputFileError } from '../util/errors.js';
import { bitConfigLines, bitNpzLayout, depthsOf, describeBitLayout, splitRootWidth, type BitLayout } from './bit_weights.js';
import { RESNET_SPECS } from './resnet.js';
import { describeStateDict, resolveWeightsPath } from './weights.js';
import type { ReleasedLayout } from './released_layouts.js';
import { isTorchCheckpointPath, openTorchStateDict, withBackboneNames, type StateDictFile } from './state_dicts.js';
import { unsupportedWeightsFormat } from './weights_format.js';

export type WeightsFormat = 'safetensors' | 'BiT npz' | 'npz' | 'simtrip checkpoint' | 'PyTorch zip' | 'PyTorch legacy';

export interface WeightsSummary {
  path: string;
  format: WeightsFormat;
  fileBytes: number;
  tensors: number;
  /** Bytes of tensor data (uncompressed for .npz), from the headers. */
  dataBytes: number;
  /** Tensor count per dtype, in the file format's own names (F32, float16, ...). */
  dtypes: Record<string, number>;
  architecture: string;
  /** How to use the file: config lines such as "model.arch: bit-r50x1"; empty when no model fits. */
  usage: string[];
  /** Why the file cannot be used, when usage is empty. */
  note?: string;
  /** The released checkpoint layout recognised (SimSiam, MoCo v3, DINO, ...), and where its state dict was. */
  layout?: string;
  /** What the file holds beyond the backbone that is not loaded, and caveats of the layout. */
  layoutNotes?: string[];
}

type Detected = Pick<WeightsSummary, 'architecture' | 'usage' | 'note' | 'layout' | 'layoutNotes'>;

const MODEL_LINE = /^model\.(arch|stem|width|norm): (\S+)$/;

/** The model settings in a summary's usage lines: { arch: 'resnet18', stem: 'cifar', width: '1' }. */
export function usageModelSettings(usage: readonly string[]): Partial<Record<'arch' | 'stem' | 'width' | 'norm', string>> {
  const settings: Partial<Record<'arch' | 'stem' | 'width' | 'norm', string>> = {};
  for (const line of usage) {
    const m = MODEL_LINE.exec(line);
    if (m) settings[m[1] as 'arch'] = m[2]!;
  }
  return settings;
}

/** Config lines for a layout simtrip builds (plus model.weights), or the reason none does. */
function usable(architecture: string, lines: string[] | string, path: string): Detected {
  return typeof lines === 'string' ? { architecture, usage: [], note: lines } : { architecture, usage: [...lines, `model.weights: ${path}`] };
}

export async function inspectWeights(path: string): Promise<WeightsSummary> {
  const resolved = resolveWeightsPath(path);
  const ext = extname(resolved).toLowerCase();
  if (ext === '.npz') return inspectNpz(resolved);
  if (ext === '.safetensors') return inspectSafetensors(resolved);
  if (isTorchCheckpointPath(resolved)) return inspectTorch(resolved);
  throw unsupportedWeightsFormat(resolved);
}

function countDtypes(dtypes: Iterable<string>): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const d of dtypes) counts[d] = (counts[d] ?? 0) + 1;
  return counts;
}

async function inspectNpz(path: string): Promise<WeightsSummary> {
  const npz = await openNpz(path);
  const names = npz.names();
  const infos = new Map(names.map((n) => [n, npz.info(n)]));
  const layout = bitNpzLayout(names, (k) => infos.get(k)!.shape);
  const detected = layout
    ? usable(describeBitLayout(layout), bitUsage(layout), path)
    : usable(`not a BiT checkpoint (${describeStateDict(names)})`, 'simtrip reads .npz files only as official BiT checkpoints', path);
  return {
    path,
    format: layout ? 'BiT npz' : 'npz',
    fileBytes: statSync(path).size,
    tensors: names.length,
    dataBytes: [...infos.values()].reduce((n, i) => n + i.dataBytes, 0),
    dtypes: countDtypes([...infos.values()].map((i) => i.dtype)),
    ...detected,
  };
}

async function inspectSafetensors(path: string): Promise<WeightsSummary> {
  const file = await readSafetensors(path);
  const names = file.names();
  const state = checkpointStateOf(file);
  return {
    path,
    format: state ? 'simtrip checkpoint' : 'safetensors',
    fileBytes: statSync(path).size,
    tensors: names.length,
    dataBytes: names.reduce((n, k) => n + file.byteLength(k), 0),
    dtypes: countDtypes(names.map((k) => file.info(k).dtype)),
    ...(state ? describeCheckpoint(state, path) : detectStateDict(withBackboneNames(file))),
  };
}

/** Every tensor reachable from a torch.save object (shared ones once; no recursion, so any nesting depth). */
function tensorsIn(root: unknown): TorchTensor[] {
  const out: TorchTensor[] = [];
  const seen = new Set<unknown>();
  const pending: unknown[] = [root];
  for (let i = 0; i < pending.length; i++) {
    const v = pending[i];
    if (typeof v !== 'object' || v === null || seen.has(v)) continue;
    seen.add(v);
    if (v instanceof TorchTensor) out.push(v);
    else if (v instanceof Map) pending.push(...v.values());
    else if (Array.isArray(v)) pending.push(...v);
    else if (v instanceof PyRecord) pending.push(...v.fields.values());
  }
  return out;
}

async function inspectTorch(path: string): Promise<WeightsSummary> {
  const opened = await openTorchStateDict(path);
  const tensors = tensorsIn(opened.torch.root);
  const storages = new Set<TorchStorage>(tensors.map((t) => t.storage.view?.root ?? t.storage));
  return {
    path,
    format: opened.torch.format === 'zip' ? 'PyTorch zip' : 'PyTorch legacy',
    fileBytes: statSync(path).size,
    tensors: tensors.length,
    dataBytes: [...storages].reduce((n, st) => n + st.numel * DTYPE_BYTES[st.dtype], 0),
    dtypes: countDtypes(tensors.map((t) => t.dtype)),
    ...detectStateDict(opened),
  };
}

function describeCheckpoint(state: CheckpointState, path: string): Detected {
  const m = state.config.model;
  const model = [`model.arch: ${m.arch}`, `model.stem: ${m.stem}`, `model.width: ${m.width}`];
  if (m.arch.startsWith('bit-')) model.push(`model.norm: ${m.norm}`);
  return {
    architecture: `simtrip checkpoint: ${m.arch} + ${state.config.method.name}, epoch ${state.epoch} (step ${state.step}, ${state.normalization} input scaling)`,
    usage: [`--checkpoint ${path}   (eval, embed: the checkpoint's own model settings are used)`, ...model, `model.weights: ${path}   (as the initialisation of a new run)`],
  };
}

/** "MoCo v3 checkpoint (the base encoder), state dict in 'state_dict'" and the layout's notes. */
function layoutFields(layout: ReleasedLayout): Pick<WeightsSummary, 'layout' | 'layoutNotes'> {
  const where = layout.entry ? `, state dict in '${layout.entry}'` : '';
  return { layout: `${layout.name}${where}`, ...(layout.notes.length > 0 ? { layoutNotes: layout.notes } : {}) };
}

/** The architecture of the backbone the released layout holds (its tensors under simtrip's names). */
function detectStateDict({ tensors, layout, backbone }: StateDictFile): Detected {
  if (!layout) {
    const original = tensors.names().map((n) => tensors.fileName(n));
    return usable(describeStateDict(original), 'no simtrip model.arch matches this file', tensors.path);
  }
  const local = new Set(backbone);
  const shapeOf = (k: string) => tensors.info(k).shape;
  const behind = layout.prefix ? ` behind prefix '${layout.prefix}' (stripped when loading)` : '';
  const detected = layout.naming === 'torchvision' ? torchvisionResnet(local, shapeOf) : timmBit(local, shapeOf, layout.naming === 'bit-pytorch' ? 'bit_pytorch ResNetV2' : 'timm resnetv2 (BiT names)');
  return { ...usable(detected.architecture + behind, detected.lines, tensors.path), ...layoutFields(layout) };
}

/** bitConfigLines, or the reason as a string when no arch has the layout. */
function bitUsage(layout: BitLayout): string[] | string {
  const lines = bitConfigLines(layout);
  return lines[0]!.startsWith('model.arch') ? lines : lines[0]!;
}

type ShapeOf = (localKey: string) => readonly number[];

function indexPairs(keys: Iterable<string>, re: RegExp): [number, number][] {
  const pairs: [number, number][] = [];
  for (const k of keys) {
    const m = re.exec(k);
    if (m) pairs.push([Number(m[1]), Number(m[2])]);
  }
  return pairs;
}

/** timm resnetv2_*_bit names: stem.conv, stages.S.blocks.J.*, norm, head.fc (a 1x1 conv). Kernels OIHW. */
function timmBit(local: ReadonlySet<string>, shapeOf: ShapeOf, label: string): { architecture: string; lines: string[] | string } {
  const stem = shapeOf('stem.conv.weight');
  const layout: BitLayout = {
    depths: depthsOf(indexPairs(local.keys(), /^stages\.(\d+)\.blocks\.(\d+)\./)),
    ...splitRootWidth(stem[0]!),
    rootKernel: stem[2]!,
    numClasses: local.has('head.fc.weight') ? shapeOf('head.fc.weight')[0] : undefined,
    norm: local.has('norm.running_mean') ? 'batch' : 'group',
  };
  return { architecture: `${label}: ${describeBitLayout(layout)}`, lines: bitUsage(layout) };
}

const TORCHVISION_NAMES: Record<'basic' | 'bottleneck', Record<string, string>> = {
  basic: { '2,2,2,2': 'resnet18', '3,4,6,3': 'resnet34' },
  bottleneck: { '3,4,6,3': 'resnet50', '3,4,23,3': 'resnet101', '3,8,36,3': 'resnet152' },
};

/** torchvision/timm BatchNorm ResNets: conv1, bn1, layerL.B.*, fc. */
function torchvisionResnet(local: ReadonlySet<string>, shapeOf: ShapeOf): { architecture: string; lines: string[] | string } {
  const block = [...local.keys()].some((k) => /^layer\d+\.\d+\.conv3\.weight$/.test(k)) ? 'bottleneck' : 'basic';
  const depths = depthsOf(indexPairs(local.keys(), /^layer(\d+)\.(\d+)\./));
  const conv1 = shapeOf('conv1.weight'); // [width, 3, k, k]
  const width = conv1[0]!;
  const stem = conv1[2] === 3 ? 'cifar' : 'imagenet';
  const name = TORCHVISION_NAMES[block][depths.join()];
  const fc = local.has('fc.weight') ? `fc ${shapeOf('fc.weight')[0]} classes` : 'no fc';
  const architecture = `torchvision ${name ?? 'ResNet'} (${block} blocks ${depths.join(',')}, width ${width}, ${conv1[2]}x${conv1[3]} stem, ${fc})`;
  if (!name || !Object.hasOwn(RESNET_SPECS, name)) {
    return { architecture, lines: `simtrip builds ${Object.keys(RESNET_SPECS).join(' and ')}, not this model` };
  }
  const lines = [`model.arch: ${name}`, `model.stem: ${stem}`];
  if (width !== 64) lines.push(`model.width: ${width}`);
  return { architecture, lines };
}

/** 1234567 -> "1,234,567 bytes (1.2 MiB)". */
export function humanBytes(n: number): string {
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let unit = 'bytes';
  for (const u of units) {
    if (v < 1024) break;
    v /= 1024;
    unit = u;
  }
  const human = unit === 'bytes' ? '' : ` (${v.toFixed(1)} ${unit})`;
  return `${n.toLocaleString('en-US')} bytes${human}`;
}

const FORMAT_TEXT: Record<WeightsFormat, string> = {
  safetensors: 'safetensors',
  'BiT npz': 'BiT npz (zip of .npy arrays)',
  npz: 'npz (zip of .npy arrays)',
  'simtrip checkpoint': 'simtrip checkpoint (safetensors)',
  'PyTorch zip': 'PyTorch checkpoint (torch.save zip format, torch >= 1.6)',
  'PyTorch legacy': 'PyTorch checkpoint (torch.save legacy format)',
};

export function formatWeightsSummary(s: WeightsSummary): string {
  const dtypes = Object.entries(s.dtypes)
    .map(([d, n]) => `${d} x ${n}`)
    .join(', ');
  const rows: [string, string][] = [
    ['file', s.path],
    ['format', FORMAT_TEXT[s.format]],
    ['tensors', String(s.tensors)],
    ['size', `${humanBytes(s.dataBytes)} of tensor data; file ${humanBytes(s.fileBytes)}`],
    ['dtypes', dtypes || '(none)'],
    ['architecture', s.architecture],
    ...(s.layout ? [['layout', s.layout] as [string, string]] : []),
    ...(s.layoutNotes ?? []).map((n, i): [string, string] => [i === 0 ? 'notes' : '', n]),
    ...(s.usage.length > 0 ? s.usage : [s.note ?? '']).map((u, i): [string, string] => [i === 0 ? 'use with' : '', u]),
  ];
  return `${rows.map(([k, v]) => `${k.padEnd(13)}${v}`.trimEnd()).join('\n')}\n`;
}
