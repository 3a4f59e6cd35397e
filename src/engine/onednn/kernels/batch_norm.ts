/**
 * Training-mode batch normalisation as two kernels of the onednn backend (native/onednn/batch_norm.cc)
 * over the [rows, channels] view every axis but the last collapses into.
 */
import { BATCH_NORM_SPEC } from '../../custom_kernels.js';
import type { NativeAddon } from '../native.js';
import { registerNormKernels } from './norm_kernels.js';

export function registerBatchNormKernels(backendName: string, addon: NativeAddon): boolean {
  return registerNormKernels(BATCH_NORM_SPEC, { forward: 'batchNormForward', backward: 'batchNormBackward' }, backendName, addon);
}
