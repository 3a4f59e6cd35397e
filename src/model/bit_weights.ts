/**
 * Official BiT .npz checkpoints (resnet/root_block/standardized_conv2d/kernel, ...) onto BitResNet's
 * timm-style parameter names. Kernels are HWIO in both, so they load without a transpose; the head's
 * 1x1 conv kernel [1, 1, C, K] becomes the linear weight [C, K]. Loading is all-or-nothing: every
 * model parameter must be found with its shape, otherwise an InputFileError lists what is wrong and
 * nothing is assigned.
 */
import { tf } from '../engine/tf.js';
import { openNpz } from '../io/npz.js';
import { InputFileError } from '../util/errors.js';
import type { ParamStore } from './params.js';

export interface BitWeightsReport {
  path: string;
  /** Model parameters assigned from the file. */
  loaded: string[];
  /** Model parameters the file does not provide (always empty on success: missing is an error). */
  missing: string[];
  /** File arrays that map onto no model parameter (e.g. the head when the model has no classifier). */
  ignored: string[];
}

export interface LoadBitOptions {
  /** Prefix of the backbone's parameter names in the store (default "backbone."). */
  prefix?: string;
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

const shapeText = (s: readonly number[]) => `[${s.join(', ')}]`;

function listSome(items: readonly string[], max = 8): string {
  return items.length <= max ? items.join(', ') : `${items.slice(0, max).join(', ')} and ${items.length - max} more`;
}

export async function loadBitNpz(store: ParamStore, path: string, opts: LoadBitOptions = {}): Promise<BitWeightsReport> {
  const prefix = opts.prefix ?? 'backbone.';
  const npz = await openNpz(path);
  const fileKeys = new Set(npz.names());
  const used = new Set<string>();
  const missing: string[] = [];
  const mismatched: string[] = [];
  const pending: { name: string; data: Float32Array; shape: number[] }[] = [];

  for (const param of store.list()) {
    if (!param.name.startsWith(prefix)) continue;
    const local = param.name.slice(prefix.length);
    const key = bitKeyFor(local);
    if (!key || !fileKeys.has(key)) {
      missing.push(key ? `${param.name} (${key})` : `${param.name} (no BiT counterpart)`);
      continue;
    }
    used.add(key);
    const arr = npz.read(key);
    const modelShape = [...param.variable.shape];
    // The head is a 1x1 conv [1, 1, C, K] in the file and a linear [C, K] in the model.
    const expected = local === 'head.fc.weight' ? [1, 1, ...modelShape] : modelShape;
    if (arr.shape.length !== expected.length || arr.shape.some((d, i) => d !== expected[i])) {
      mismatched.push(`${key}: file ${shapeText(arr.shape)}, model ${param.name} ${shapeText(expected)}`);
      continue;
    }
    pending.push({ name: param.name, data: arr.toFloat32(), shape: modelShape });
  }

  const problems: string[] = [];
  if (missing.length) problems.push(`missing ${missing.length} parameter(s): ${listSome(missing)}`);
  if (mismatched.length) problems.push(`${mismatched.length} shape mismatch(es): ${listSome(mismatched)}`);
  if (problems.length) throw new InputFileError(path, `not a BiT checkpoint for this model: ${problems.join('; ')}`);

  for (const p of pending) {
    const t = tf.tensor(p.data, p.shape, 'float32');
    store.get(p.name).variable.assign(t);
    t.dispose();
  }
  return {
    path,
    loaded: pending.map((p) => p.name),
    missing: [],
    ignored: [...fileKeys].filter((k) => !used.has(k)),
  };
}
