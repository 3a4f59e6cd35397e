/**
 * Training-mode batch normalisation as two kernels of the onednn backend (native/onednn/batch_norm.cc)
 * over the [rows, channels] view every axis but the last collapses into.
 */
import { BATCH_NORM_RELU_SPEC, BATCH_NORM_SPEC } from '../../custom_kernels.js';
import type { NativeAddon } from '../native.js';
import { registerNormKernels } from './norm_kernels.js';

/** The plain pair and the pair with a fused ReLU: one native forward and backward serve both. */
export function registerBatchNormKernels(backendName: string, addon: NativeAddon): boolean {
  const fns = { forward: 'batchNormForward', backward: 'batchNormBackward' } as const;
  if (!registerNormKernels(BATCH_NORM_SPEC, fns, backendName, addon)) return false;
  // An addon built before the fused ReLU existed would ignore the flag: it registers the plain pair only.
  if (addon.info().batchNormRelu === true) registerNormKernels(BATCH_NORM_RELU_SPEC, fns, backendName, addon);
  return true;
}
