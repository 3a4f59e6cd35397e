/**
 * GroupNorm over NHWC tensors as two kernels of the onednn backend (native/onednn/group_norm.cc). Statistics
 * are per (sample, group), [N * G] in sample-major order.
 */
import type { NativeAddon } from '../native.js';
import { gradName, registerNormKernels, type NormKernelSpec } from './norm_kernels.js';

/** Inputs x (NHWC), gamma, beta; outputs y, mean and biased variance per (n, g). Attrs: eps, groups. */
export const GROUP_NORM = 'SimtripGroupNorm';

export interface GroupNormAttrs {
  eps: number;
  groups: number;
}

export const GROUP_NORM_KERNELS: NormKernelSpec = {
  name: GROUP_NORM,
  forward: 'groupNormForward',
  backward: 'groupNormBackward',
  params(shape, attrs) {
    if (shape.length !== 4) throw new Error(`${GROUP_NORM}: expected an NHWC tensor, got shape [${shape.join(',')}]`);
    const [n, h, w, c] = shape as [number, number, number, number];
    return Int32Array.from([n, h * w, c, (attrs as unknown as GroupNormAttrs).groups]);
  },
  statCount: (params) => params[0]! * params[3]!,
};

export const GROUP_NORM_GRAD = gradName(GROUP_NORM_KERNELS);

export function registerGroupNormKernels(backendName: string, addon: NativeAddon): boolean {
  return registerNormKernels(GROUP_NORM_KERNELS, backendName, addon);
}
