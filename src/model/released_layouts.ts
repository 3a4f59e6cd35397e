/**
 * Where released checkpoints keep a ResNet backbone, and under which names, recognised from the
 * checkpoint's structure and key names alone:
 *
 *   SimSiam (main_simsiam.py)     state_dict -> module.encoder.*  (encoder fc = the projector)
 *   MoCo v1/v2                    state_dict -> module.encoder_q.* (encoder_k, queue beside it)
 *   MoCo v3                       state_dict -> module.base_encoder.* (momentum_encoder, predictor)
 *   DINO                          teacher -> backbone.*, student -> module.backbone.*
 *   Lightning .ckpt               state_dict -> <attribute path>.backbone.* (e.g. model.backbone.)
 *   SimTriplet, BiT-SimSiam       state_dict -> backbone.* (+ encoder.0.* repeating it, projector, predictor)
 *   torchvision, timm, BYOL, Barlow Twins, SwAV releases: the state dict itself, maybe behind module.
 *
 * The backbone's own names come in three namings: torchvision's (conv1, bn1, layerL.B.*), timm's
 * resnetv2 BiT names (stem.conv, stages.S.blocks.J.*: what simtrip's BiT uses), and Google's
 * bit_pytorch names (root.conv, body.blockN.unitNN.*, head.gn: BiT-SimSiam's code), renamed here
 * to timm's.
 */
import { FormatError } from '../io/source.js';
import { TorchTensor } from '../io/torch_pickle.js';
import { listSome } from '../util/text.js';

export type BackboneNaming = 'torchvision' | 'timm-bit' | 'bit-pytorch';

export interface ReleasedLayout {
  /** What the file is, e.g. "SimSiam checkpoint (main_simsiam.py)". */
  readonly name: string;
  /** Where in a torch.save object the state dict was ("state_dict", "teacher"); '' for the top level. */
  readonly entry: string;
  /** The backbone's key prefix in the state dict ('' when none). */
  readonly prefix: string;
  readonly naming: BackboneNaming;
  /** What else the file holds that is not loaded, and caveats. */
  readonly notes: string[];
}

/** What surrounds the state dict in a torch.save object (nothing for a .safetensors file). */
export interface LayoutContext {
  readonly entry: string;
  /** The checkpoint's top-level keys. */
  readonly topKeys: readonly string[];
  /** Lightning's 'pytorch-lightning_version', when the file is a Lightning checkpoint. */
  readonly lightningVersion?: string;
}

export const NO_CONTEXT: LayoutContext = { entry: '', topKeys: [] };

// ---------------------------------------------------------------------------------------------------
// Finding the state dict in a torch.save object.

/** Top-level entries that hold a model's state dict, in the order they are preferred. DINO's teacher
 * is what DINO's own evaluation uses. */
const STATE_DICT_ENTRIES = ['teacher', 'state_dict', 'model', 'model_state_dict', 'net', 'network', 'student', 'module'];

export interface StateDictEntry {
  readonly entry: string;
  readonly tensors: Map<string, TorchTensor>;
  readonly context: LayoutContext;
}

/** The string-keyed tensors of a dict that is mostly tensors (a state dict), else null. */
function tensorsOf(value: unknown): Map<string, TorchTensor> | null {
  if (!(value instanceof Map) || value.size === 0) return null;
  const tensors = new Map<string, TorchTensor>();
  for (const [k, v] of value) if (typeof k === 'string' && v instanceof TorchTensor) tensors.set(k, v);
  return tensors.size > 0 && tensors.size * 2 >= value.size ? tensors : null;
}

/**
 * The state dict a torch.save object holds: the object itself, or the first of the usual entries
 * (teacher, state_dict, model, ...) that is one, or else the largest dict of tensors at the top level.
 */
export function findStateDict(root: unknown): StateDictEntry {
  const top = root instanceof Map ? [...root.keys()].filter((k): k is string => typeof k === 'string') : [];
  const version = root instanceof Map ? root.get('pytorch-lightning_version') : undefined;
  const context = (entry: string): LayoutContext => ({ entry, topKeys: top, lightningVersion: typeof version === 'string' ? version : undefined });
  const itself = tensorsOf(root);
  if (itself) return { entry: '', tensors: itself, context: context('') };
  if (!(root instanceof Map)) throw new FormatError(`holds a ${describe(root)}, not a state dict or a checkpoint dict`);
  for (const entry of STATE_DICT_ENTRIES) {
    const tensors = tensorsOf(root.get(entry));
    if (tensors) return { entry, tensors, context: context(entry) };
  }
  let best: StateDictEntry | null = null;
  for (const entry of top) {
    const tensors = tensorsOf(root.get(entry));
    if (tensors && (!best || tensors.size > best.tensors.size)) best = { entry, tensors, context: context(entry) };
  }
  if (!best) throw new FormatError(`no state dict in the checkpoint (top-level keys: ${listSome(top, 8) || 'none'})`);
  return best;
}

function describe(value: unknown): string {
  if (value instanceof TorchTensor) return 'single tensor';
  if (Array.isArray(value)) return 'list';
  if (value instanceof Map) return 'dict without tensors';
  return typeof value;
}

// ---------------------------------------------------------------------------------------------------
// The backbone inside a state dict.

interface StemCandidate {
  readonly prefix: string;
  readonly naming: BackboneNaming;
}

const STEMS: readonly { naming: BackboneNaming; stem: string; body: string }[] = [
  { naming: 'torchvision', stem: 'conv1.weight', body: 'layer1.' },
  { naming: 'timm-bit', stem: 'stem.conv.weight', body: 'stages.0.' },
  { naming: 'bit-pytorch', stem: 'root.conv.weight', body: 'body.block1.' },
];

/** Backbones in the file: a stem conv whose body sits beside it under the same prefix. */
function stemCandidates(keys: readonly string[]): StemCandidate[] {
  const out: StemCandidate[] = [];
  for (const { naming, stem, body } of STEMS) {
    for (const key of keys) {
      if (!key.endsWith(stem)) continue;
      const prefix = key.slice(0, key.length - stem.length);
      if (prefix !== '' && !prefix.endsWith('.')) continue;
      if (keys.some((k) => k.startsWith(prefix + body))) out.push({ prefix, naming });
    }
  }
  return out;
}

/** Prefixes of the copies that are not the model itself: momentum/target/EMA encoders, optimizer state. */
const SECONDARY = /(^|\.)(momentum[^.]*|target[^.]*|encoder_k|ema[^.]*|model_ema|teacher)\.|optimizer\./;

/** Known backbone prefixes, most wanted first. */
const PREFERRED = ['module.encoder.', 'module.encoder_q.', 'module.base_encoder.', 'module.backbone.', 'backbone.', 'module.', 'encoder.', 'encoder_q.', ''];

function pickBackbone(candidates: readonly StemCandidate[]): StemCandidate | null {
  if (candidates.length === 0) return null;
  const primary = candidates.filter((c) => !SECONDARY.test(c.prefix));
  const pool = primary.length > 0 ? primary : [...candidates];
  const rank = (c: StemCandidate) => {
    const i = PREFERRED.indexOf(c.prefix);
    return i >= 0 ? i : PREFERRED.length + c.prefix.length;
  };
  return pool.reduce((a, b) => (rank(b) < rank(a) ? b : a));
}

function has(keys: readonly string[], prefix: string): boolean {
  return keys.some((k) => k.startsWith(prefix));
}

/** Names the layout from the backbone's prefix and what surrounds it. */
function describeLayout(keys: readonly string[], pick: StemCandidate, context: LayoutContext, shapeOf: (key: string) => readonly number[]): { name: string; notes: string[] } {
  const { prefix, naming } = pick;
  if (context.entry === 'teacher' || context.entry === 'student') {
    const other = context.entry === 'teacher' ? 'student' : 'teacher';
    const chosen = context.entry === 'teacher' ? "the teacher (what DINO's own evaluation uses)" : 'the student (the file has no teacher)';
    const notes = [`${chosen} is loaded; the DINO head${context.topKeys.includes(other) ? ` and the ${other}` : ''} are not`];
    return { name: 'DINO checkpoint', notes };
  }
  if (context.lightningVersion !== undefined) {
    return { name: `Lightning checkpoint (pytorch-lightning ${context.lightningVersion})`, notes: ['only the backbone is loaded; the module\'s heads and Lightning\'s loop, optimizer and callback records are not'] };
  }
  if (prefix === 'module.encoder.' && has(keys, 'module.predictor.')) {
    return { name: 'SimSiam checkpoint (main_simsiam.py)', notes: ["the encoder's fc.* is SimSiam's projector, not part of the backbone"] };
  }
  if (prefix === 'module.encoder_q.') {
    return { name: 'MoCo v1/v2 checkpoint (the query encoder)', notes: ['encoder_k (the momentum encoder), the queue and the fc projector are not loaded'] };
  }
  if (prefix === 'module.base_encoder.') {
    return { name: 'MoCo v3 checkpoint (the base encoder)', notes: ['momentum_encoder, the predictor and the fc projector are not loaded'] };
  }
  const siamese = prefix === 'backbone.' && has(keys, 'projector.') && has(keys, 'predictor.');
  if (siamese && naming === 'bit-pytorch') {
    const notes = ["BiT-SimSiam's backbone: bit_pytorch names (root.conv, body.blockN.unitNN.*, head.gn) read as timm's", 'encoder.0.* repeats backbone.*; the projector and predictor are not part of the backbone'];
    if (shapeOf(`${prefix}root.conv.weight`)[2] === 3) {
      notes.push("its CIFAR root zero-pads the 3x3 conv's output by 1 (ConstantPad2d) before the body; simtrip's cifar stem does not, so features differ from that code's");
    }
    return { name: 'BiT-SimSiam checkpoint', notes };
  }
  if (siamese) {
    return { name: 'SimTriplet / SimSiam checkpoint (backbone, projector, predictor)', notes: ['encoder.0.* repeats backbone.*; the projector and predictor are not part of the backbone'] };
  }
  if (naming === 'bit-pytorch') return { name: 'BiT ResNet-v2 state dict in bit_pytorch names (read as timm\'s)', notes: [] };
  if (prefix === '' || prefix === 'module.') {
    const what = naming === 'timm-bit' ? 'timm resnetv2 state dict' : 'torchvision/timm ResNet state dict (as torchvision, timm, BYOL, Barlow Twins and SwAV release them)';
    return { name: what, notes: prefix === 'module.' ? ["saved from DataParallel/DistributedDataParallel ('module.')"] : [] };
  }
  return { name: `state dict with the backbone behind '${prefix}'`, notes: [] };
}

/**
 * The layout of a state dict's keys (in their context), or null when no backbone simtrip reads is in
 * it. `shapeOf` gives a key's shape.
 */
export function recogniseLayout(keys: readonly string[], shapeOf: (key: string) => readonly number[], context: LayoutContext = NO_CONTEXT): ReleasedLayout | null {
  const pick = pickBackbone(stemCandidates(keys));
  if (!pick) return null;
  const { name, notes } = describeLayout(keys, pick, context, shapeOf);
  return { name, entry: context.entry, prefix: pick.prefix, naming: pick.naming, notes };
}

/**
 * bit_pytorch's name for a unit parameter -> timm's:
 *   root.conv.weight -> stem.conv.weight;  head.gn.X -> norm.X;  head.conv.X -> head.fc.X
 *   body.blockS.unitJJ.gnK.X -> stages.{S-1}.blocks.{JJ-1}.normK.X;  .convK.weight -> .convK.weight
 *   body.blockS.unitJJ.downsample.weight -> stages.{S-1}.blocks.{JJ-1}.downsample.conv.weight
 */
export function bitPytorchToTimm(name: string): string | null {
  if (name === 'root.conv.weight') return 'stem.conv.weight';
  let m = /^head\.gn\.(.+)$/.exec(name);
  if (m) return `norm.${m[1]}`;
  m = /^head\.conv\.(weight|bias)$/.exec(name);
  if (m) return `head.fc.${m[1]}`;
  m = /^body\.block(\d+)\.unit(\d+)\.(.+)$/.exec(name);
  if (!m) return null;
  const unit = `stages.${Number(m[1]) - 1}.blocks.${Number(m[2]) - 1}`;
  const rest = m[3]!;
  if (rest === 'downsample.weight') return `${unit}.downsample.conv.weight`;
  const norm = /^gn([123])\.(.+)$/.exec(rest);
  if (norm) return `${unit}.norm${norm[1]}.${norm[2]}`;
  return /^conv[123]\.weight$/.test(rest) ? `${unit}.${rest}` : null;
}

/** The backbone's own modules in each naming (anything else under the prefix is someone else's). */
const BACKBONE_MODULES: Readonly<Record<Exclude<BackboneNaming, 'bit-pytorch'>, RegExp>> = {
  torchvision: /^(conv1|bn1|layer\d+|fc)\./,
  'timm-bit': /^(stem|stages|norm|head)\./,
};

/**
 * File key -> the name simtrip's backbone gives it (prefix stripped, bit_pytorch names renamed), for
 * the backbone's own modules only: a predictor beside a backbone behind 'module.' keeps its name.
 */
export function backboneRenames(keys: readonly string[], layout: ReleasedLayout): Map<string, string> {
  const renames = new Map<string, string>();
  for (const key of keys) {
    if (!key.startsWith(layout.prefix)) continue;
    const local = key.slice(layout.prefix.length);
    const name = layout.naming === 'bit-pytorch' ? bitPytorchToTimm(local) : BACKBONE_MODULES[layout.naming].test(local) ? local : null;
    if (name !== null) renames.set(key, name);
  }
  return renames;
}
