/**
 * Every native kernel of the CUDA engine, by tfjs kernel name (simtrip's own kernels included). A
 * tfjs kernel missing here runs through the counted host fallback.
 */
import type { KernelTable } from './common.js';
import { LAYOUT_KERNELS } from './layout.js';
import { SHAPE_KERNELS } from './shape.js';

export const CUDA_KERNELS: KernelTable = {
  ...SHAPE_KERNELS,
  ...LAYOUT_KERNELS,
};
