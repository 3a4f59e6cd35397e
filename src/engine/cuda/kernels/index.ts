/**
 * Every native kernel of the CUDA engine, by tfjs kernel name (simtrip's own kernels included). A
 * tfjs kernel missing here runs through the counted host fallback.
 */
import type { KernelTable } from './common.js';
import { CONV_KERNELS } from './conv.js';
import { ELTWISE_KERNELS } from './eltwise.js';
import { FP16_KERNELS } from './fp16.js';
import { LAYOUT_KERNELS } from './layout.js';
import { MATMUL_KERNELS } from './matmul.js';
import { NORM_KERNELS } from './norm.js';
import { OPTIM_KERNELS } from './optim.js';
import { POOL_KERNELS } from './pool.js';
import { REDUCE_KERNELS } from './reduce.js';
import { SHAPE_KERNELS } from './shape.js';

export const CUDA_KERNELS: KernelTable = {
  ...SHAPE_KERNELS,
  ...LAYOUT_KERNELS,
  ...ELTWISE_KERNELS,
  ...REDUCE_KERNELS,
  ...CONV_KERNELS,
  ...POOL_KERNELS,
  ...MATMUL_KERNELS,
  ...NORM_KERNELS,
  ...OPTIM_KERNELS,
  ...FP16_KERNELS,
};
