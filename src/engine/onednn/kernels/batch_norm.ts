/**
 * Training-mode batch normalisation as two kernels of the onednn backend (native/batch_norm.cc). They
 * have no cpu counterpart: src/ops/batch_norm.ts runs them only where they are registered and composes
 * standard ops everywhere else.
 */
import type { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import { tf } from '../../tf.js';
import type { NativeAddon } from '../native.js';
import { nativeRuns, requireF32, sizeOf } from './common.js';

/** Inputs x, gamma, beta; outputs y, batch mean, biased batch variance. Attr: eps. */
export const BATCH_NORM_TRAIN = 'SimtripBatchNormTrain';
/** Inputs dy, x, gamma, mean, variance; outputs dx, dgamma, dbeta. Attr: eps. */
export const BATCH_NORM_TRAIN_GRAD = 'SimtripBatchNormTrainGrad';

export interface BatchNormTrainAttrs {
  eps: number;
}

type Addon = Required<Pick<NativeAddon, 'batchNormForward' | 'batchNormBackward'>>;

/** The [rows, channels] view every axis but the last collapses into. */
function rowsAndChannels(shape: readonly number[]): Int32Array {
  if (shape.length < 2) throw new Error(`${BATCH_NORM_TRAIN}: expected rank >= 2, got shape [${shape.join(',')}]`);
  const channels = shape[shape.length - 1]!;
  return Int32Array.from([sizeOf(shape) / channels, channels]);
}


function forwardKernel(addon: Addon): tf.KernelFunc {
  return ({ inputs, attrs, backend }) => {
    const cpu = backend as MathBackendCPU;
    const { x, gamma, beta } = inputs as { x: tf.TensorInfo; gamma: tf.TensorInfo; beta: tf.TensorInfo };
    const { eps } = attrs as unknown as BatchNormTrainAttrs;
    const params = rowsAndChannels(x.shape);
    const channels = params[1]!;
    const xs = requireF32(cpu, x, BATCH_NORM_TRAIN, 'x', sizeOf(x.shape));
    const y = new Float32Array(xs.length);
    const mean = new Float32Array(channels);
    const variance = new Float32Array(channels);
    addon.batchNormForward(xs, requireF32(cpu, gamma, BATCH_NORM_TRAIN, 'gamma', channels), requireF32(cpu, beta, BATCH_NORM_TRAIN, 'beta', channels), y, mean, variance, params, eps);
    nativeRuns.set(BATCH_NORM_TRAIN, (nativeRuns.get(BATCH_NORM_TRAIN) ?? 0) + 1);
    return [
      cpu.makeTensorInfo([...x.shape], 'float32', y),
      cpu.makeTensorInfo([channels], 'float32', mean),
      cpu.makeTensorInfo([channels], 'float32', variance),
    ];
  };
}

function backwardKernel(addon: Addon): tf.KernelFunc {
  return ({ inputs, attrs, backend }) => {
    const cpu = backend as MathBackendCPU;
    const { dy, x, gamma, mean, variance } = inputs as Record<'dy' | 'x' | 'gamma' | 'mean' | 'variance', tf.TensorInfo>;
    const { eps } = attrs as unknown as BatchNormTrainAttrs;
    const params = rowsAndChannels(x.shape);
    const channels = params[1]!;
    const size = sizeOf(x.shape);
    const dx = new Float32Array(size);
    const dgamma = new Float32Array(channels);
    const dbeta = new Float32Array(channels);
    addon.batchNormBackward(
      requireF32(cpu, dy, BATCH_NORM_TRAIN, 'dy', size),
      requireF32(cpu, x, BATCH_NORM_TRAIN, 'x', size),
      requireF32(cpu, gamma, BATCH_NORM_TRAIN, 'gamma', channels),
      requireF32(cpu, mean, BATCH_NORM_TRAIN, 'mean', channels),
      requireF32(cpu, variance, BATCH_NORM_TRAIN, 'variance', channels),
      dx,
      dgamma,
      dbeta,
      params,
      eps,
    );
    nativeRuns.set(BATCH_NORM_TRAIN_GRAD, (nativeRuns.get(BATCH_NORM_TRAIN_GRAD) ?? 0) + 1);
    return [
      cpu.makeTensorInfo([...x.shape], 'float32', dx),
      cpu.makeTensorInfo([...gamma.shape], 'float32', dgamma),
      cpu.makeTensorInfo([...gamma.shape], 'float32', dbeta),
    ];
  };
}

/**
 * Registers both kernels on `backendName` and the forward kernel's gradient (gradients are global in
 * tfjs, so once is enough). An addon built before these functions existed registers nothing, and the
 * op then takes its composed path.
 */
export function registerBatchNormKernels(backendName: string, addon: NativeAddon): boolean {
  if (typeof addon.batchNormForward !== 'function' || typeof addon.batchNormBackward !== 'function') return false;
  const native = addon as Addon;
  tf.registerKernel({ kernelName: BATCH_NORM_TRAIN, backendName, kernelFunc: forwardKernel(native) });
  tf.registerKernel({ kernelName: BATCH_NORM_TRAIN_GRAD, backendName, kernelFunc: backwardKernel(native) });
  if (!tf.getGradient(BATCH_NORM_TRAIN)) {
    tf.registerGradient({
      kernelName: BATCH_NORM_TRAIN,
      inputsToSave: ['x', 'gamma'],
      outputsToSave: [false, true, true],
      gradFunc: (dys, saved, attrs) => {
        // The statistics outputs carry no gradient by contract; only dy of y matters.
        const dy = (dys as Array<tf.Tensor | null>)[0];
        const [x, gamma, mean, variance] = saved as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor];
        if (!dy) return { x: () => tf.zerosLike(x), gamma: () => tf.zerosLike(gamma), beta: () => tf.zerosLike(gamma) };
        const [dx, dgamma, dbeta] = tf.engine().runKernel(BATCH_NORM_TRAIN_GRAD, { dy, x, gamma, mean, variance }, attrs as tf.NamedAttrMap) as tf.Tensor[];
        return { x: () => dx!, gamma: () => dgamma!, beta: () => dbeta! };
      },
    });
  }
  return true;
}
