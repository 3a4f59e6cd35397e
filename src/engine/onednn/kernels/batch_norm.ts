/**
 * Training-mode batch normalisation as two kernels of the onednn backend (native/onednn/batch_norm.cc) over
 * the [rows, channels] view every axis but the last collapses into.
 */
import type { NativeAddon } from '../native.js';
import { sizeOf } from './common.js';
import { gradName, registerNormKernels, type NormKernelSpec } from './norm_kernels.js';

/** Inputs x, gamma, beta; outputs y, batch mean, biased batch variance (per channel). Attr: eps. */
export const BATCH_NORM_TRAIN = 'SimtripBatchNormTrain';

export interface BatchNormTrainAttrs {
  eps: number;
}

export const BATCH_NORM_KERNELS: NormKernelSpec = {
  name: BATCH_NORM_TRAIN,
  forward: 'batchNormForward',
  backward: 'batchNormBackward',
  params(shape) {
    if (shape.length < 2) throw new Error(`${BATCH_NORM_TRAIN}: expected rank >= 2, got shape [${shape.join(',')}]`);
    const channels = shape[shape.length - 1]!;
    return Int32Array.from([sizeOf(shape) / channels, channels]);
  },
  statCount: (params) => params[1]!,
};

/** Inputs dy, x, gamma, mean, variance; outputs dx, dgamma, dbeta. Attr: eps. */
export const BATCH_NORM_TRAIN_GRAD = gradName(BATCH_NORM_KERNELS);

export function registerBatchNormKernels(backendName: string, addon: NativeAddon): boolean {
  return registerNormKernels(BATCH_NORM_KERNELS, backendName, addon);
}
