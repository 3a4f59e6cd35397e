/**
 * simtrip's own kernels: names, attributes and shape contracts, shared by every native engine that
 * implements them (onednn, cuda). They have no cpu counterpart: the ops in src/ops/ and src/optim/ run
 * them only where the active backend registered them (canRunKernel) and compose standard ops elsewhere.
 */
import { tf } from './tf.js';
import { sizeOf } from '../util/values.js';

/** Inputs x, gamma, beta; outputs y, batch mean, biased batch variance (per channel). Attr: eps. */
export const BATCH_NORM_TRAIN = 'SimtripBatchNormTrain';
/**
 * BATCH_NORM_TRAIN followed by ReLU in one kernel: outputs relu(y), mean, variance. Its backward takes
 * the forward's output too and masks dy by it, so neither direction makes a separate ReLU pass.
 */
export const BATCH_NORM_RELU_TRAIN = 'SimtripBatchNormReluTrain';
/** Inputs x (NHWC), gamma, beta; outputs y, mean and biased variance per (n, g). Attrs: eps, groups. */
export const GROUP_NORM = 'SimtripGroupNorm';
/**
 * Inputs w, g and buf (omitted on the first step); outputs [newW, newBuf] with
 * d = g + w*weightDecay; newBuf = first ? d : buf*momentum + d; newW = w - newBuf*lr.
 */
export const SGD_UPDATE = 'SimtripSgdUpdate';
/**
 * SGD_UPDATE with one more input, `gate` (a float32 scalar on the device): where it is not 1 the
 * update is not applied (newW = w; newBuf = buf, or zeros on the first step), so a step can queue its
 * update before anyone reads whether its loss was finite. Registered by engines whose tensors live on
 * a device (cuda); elsewhere the optimiser reads the gate, which costs nothing there.
 */
export const SGD_UPDATE_GATED = 'SimtripSgdUpdateGated';

/**
 * Inputs: any number of float32 tensors (any names); output: a bool scalar, true when every element
 * of every input is finite. One pass over all of them, no host synchronisation until it is read.
 * gradsAreFinite (dynamic loss scaling) composes standard ops where no engine registered it.
 */
export const ALL_FINITE = 'SimtripAllFinite';

export interface BatchNormTrainAttrs {
  eps: number;
}

export interface GroupNormAttrs {
  eps: number;
  groups: number;
}

export interface SgdUpdateAttrs {
  lr: number;
  momentum: number;
  weightDecay: number;
  first: boolean;
}

/**
 * A training-mode normalisation kernel pair. Forward (x, gamma, beta) -> (y, mean, variance), backward
 * (dy, x, gamma, mean, variance) -> (dx, dgamma, dbeta); the statistics carry no gradient.
 */
export interface NormKernelSpec {
  /** Forward kernel name; the backward one is `${name}Grad`. */
  name: string;
  /** The native params for an input shape and the op's attributes. */
  params(shape: readonly number[], attrs: Record<string, unknown>): Int32Array;
  /** Number of statistics (mean/variance entries) for those params. */
  statCount(params: Int32Array): number;
  /** A ReLU fused after the normalisation: the backward kernel also takes the forward's output y. */
  relu?: boolean;
}

export const gradName = (spec: NormKernelSpec) => `${spec.name}Grad`;

/** Batch norm over the [rows, channels] view every axis but the last collapses into: params [rows, channels]. */
export const BATCH_NORM_SPEC: NormKernelSpec = {
  name: BATCH_NORM_TRAIN,
  params(shape) {
    if (shape.length < 2) throw new Error(`${BATCH_NORM_TRAIN}: expected rank >= 2, got shape [${shape.join(',')}]`);
    const channels = shape[shape.length - 1]!;
    return Int32Array.from([sizeOf(shape) / channels, channels]);
  },
  statCount: (params) => params[1]!,
};

/** Group norm of NHWC: params [N, H*W, C, G], statistics per (n, g) in sample-major order. */
export const GROUP_NORM_SPEC: NormKernelSpec = {
  name: GROUP_NORM,
  params(shape, attrs) {
    if (shape.length !== 4) throw new Error(`${GROUP_NORM}: expected an NHWC tensor, got shape [${shape.join(',')}]`);
    const [n, h, w, c] = shape as [number, number, number, number];
    return Int32Array.from([n, h * w, c, (attrs as unknown as GroupNormAttrs).groups]);
  },
  statCount: (params) => params[0]! * params[3]!,
};

export const BATCH_NORM_RELU_SPEC: NormKernelSpec = { ...BATCH_NORM_SPEC, name: BATCH_NORM_RELU_TRAIN, relu: true };

export const BATCH_NORM_TRAIN_GRAD = gradName(BATCH_NORM_SPEC);
export const BATCH_NORM_RELU_TRAIN_GRAD = gradName(BATCH_NORM_RELU_SPEC);
export const GROUP_NORM_GRAD = gradName(GROUP_NORM_SPEC);

/**
 * The forward kernel's gradient: runs the backward kernel on whichever backend is active. Gradients
 * are global in tfjs, so the first engine to register the pair registers this once.
 */
export function registerNormGradient(spec: NormKernelSpec): void {
  if (tf.getGradient(spec.name)) return;
  tf.registerGradient({
    kernelName: spec.name,
    inputsToSave: ['x', 'gamma'],
    outputsToSave: [spec.relu === true, true, true],
    gradFunc: (dys, saved, attrs) => {
      // The statistics outputs carry no gradient by contract; only dy of y matters.
      const dy = (dys as Array<tf.Tensor | null>)[0];
      const [x, gamma, ...outputs] = saved as tf.Tensor[];
      const [y, mean, variance] = spec.relu ? outputs : [undefined, ...outputs];
      if (!dy) return { x: () => tf.zerosLike(x!), gamma: () => tf.zerosLike(gamma!), beta: () => tf.zerosLike(gamma!) };
      const inputs = { dy, x: x!, gamma: gamma!, mean: mean!, variance: variance!, ...(y ? { y } : {}) };
      const [dx, dgamma, dbeta] = tf.engine().runKernel(gradName(spec), inputs, attrs as tf.NamedAttrMap) as tf.Tensor[];
      return { x: () => dx!, gamma: () => dgamma!, beta: () => dbeta! };
    },
  });
}

/**
 * Whether the active backend has `kernelName` and every input is float32. simtrip's own kernels are
 * registered only where a native version exists and take float32 alone.
 */
export function canRunKernel(kernelName: string, ...inputs: tf.Tensor[]): boolean {
  return inputs.every((t) => t.dtype === 'float32') && tf.getKernel(kernelName, tf.getBackend()) !== undefined;
}

/**
 * An input of one of these kernels, checked: present, float32 and `length` elements long. They have no
 * cpu version to fall back to, so a wrong input is an error that names it.
 */
export function checkedFloat32Input(t: tf.TensorInfo | undefined, kernel: string, name: string, length: number): tf.TensorInfo {
  if (!t) throw new Error(`${kernel}: missing input ${name}`);
  if (t.dtype !== 'float32') throw new Error(`${kernel}: ${name} must be float32, got ${t.dtype}`);
  const size = sizeOf(t.shape);
  if (size !== length) throw new Error(`${kernel}: ${name} has ${size} elements, expected ${length}`);
  return t;
}
