/**
 * GroupNorm over NHWC tensors as two kernels of the onednn backend (native/onednn/group_norm.cc).
 * Statistics are per (sample, group), [N * G] in sample-major order.
 */
import { GROUP_NORM_SPEC } from '../../custom_kernels.js';
import type { NativeAddon } from '../native.js';
import { registerNormKernels } from './norm_kernels.js';

export function registerGroupNormKernels(backendName: string, addon: NativeAddon): boolean {
  return registerNormKernels(GROUP_NORM_SPEC, { forward: 'groupNormForward', backward: 'groupNormBackward' }, backendName, addon);
}
