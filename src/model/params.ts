/**
 * Named parameters. Every weight lives in a ParamStore under its PyTorch state-dict name
 * ("backbone.layer1.0.conv1.weight"), so pretrained files and simtrip checkpoints load by name, and
 * checkpoints stay readable by PyTorch tools.
 *
 * Tensors are held in tfjs layout (conv HWIO, linear [in, out]); `layout` says how to convert to the
 * PyTorch layout (conv OIHW, linear [out, in]) at the file boundary.
 */
import { tf } from '../engine/tf.js';

export type Layout = 'conv' | 'linear' | 'vector';

export interface ParamOptions {
  layout: Layout;
  /** Updated by the optimiser (false for BatchNorm running statistics). */
  trainable?: boolean;
  /** BatchNorm affine parameters and biases: weight decay may be switched off for them. */
  normOrBias?: boolean;
  /** Optimiser group, e.g. 'predictor' for the fixed-lr predictor. */
  group?: string;
}

export interface Param {
  name: string;
  variable: tf.Variable;
  layout: Layout;
  trainable: boolean;
  normOrBias: boolean;
  group: string;
}

export class ParamStore {
  private readonly params = new Map<string, Param>();

  add(name: string, init: tf.Tensor, opts: ParamOptions): tf.Variable {
    if (this.params.has(name)) throw new Error(`duplicate parameter name ${name}`);
    const trainable = opts.trainable ?? true;
    // Variable names are global in a tfjs engine; a unique suffix lets several models coexist.
    const variable = tf.variable(init, trainable, `${name}#${uid++}`);
    init.dispose();
    this.params.set(name, {
      name,
      variable,
      layout: opts.layout,
      trainable,
      normOrBias: opts.normOrBias ?? false,
      group: opts.group ?? 'default',
    });
    return variable;
  }

  get(name: string): Param {
    const p = this.params.get(name);
    if (!p) throw new Error(`no parameter named ${name}`);
    return p;
  }

  has(name: string): boolean {
    return this.params.has(name);
  }

  list(): Param[] {
    return [...this.params.values()];
  }

  trainable(): Param[] {
    return this.list().filter((p) => p.trainable);
  }

  /** Number of scalar parameters (trainable only unless `all`). */
  count(all = false): number {
    return (all ? this.list() : this.trainable()).reduce((n, p) => n + p.variable.size, 0);
  }

  dispose(): void {
    for (const p of this.params.values()) p.variable.dispose();
    this.params.clear();
  }
}

let uid = 0;

/** Permutation from tfjs layout to PyTorch layout, or null when they coincide. */
export function toTorchPerm(layout: Layout, rank: number): number[] | null {
  if (layout === 'conv' && rank === 4) return [3, 2, 0, 1]; // HWIO -> OIHW
  if (layout === 'linear' && rank === 2) return [1, 0]; // [in,out] -> [out,in]
  return null;
}

/** Permutation from PyTorch layout to tfjs layout, or null when they coincide. */
export function fromTorchPerm(layout: Layout, rank: number): number[] | null {
  if (layout === 'conv' && rank === 4) return [2, 3, 1, 0]; // OIHW -> HWIO
  if (layout === 'linear' && rank === 2) return [1, 0];
  return null;
}

export function permuteShape(shape: readonly number[], perm: number[] | null): number[] {
  return perm ? perm.map((i) => shape[i]!) : [...shape];
}

/**
 * True when two conv kernel shapes in the same layout differ only in their spatial size: a model's
 * own stem (e.g. a 3x3 CIFAR stem) against a pretrained 7x7 one, which is left newly initialised
 * rather than treated as a wrong file.
 */
export function onlyKernelSizeDiffers(a: readonly number[], b: readonly number[], layout: 'torch' | 'tfjs'): boolean {
  if (a.length !== 4 || b.length !== 4) return false;
  const [spatial, channels] = layout === 'torch' ? [[2, 3], [0, 1]] : [[0, 1], [2, 3]];
  return channels.every((i) => a[i] === b[i]) && spatial.some((i) => a[i] !== b[i]);
}
