/** The fp16 kernels of the CUDA engine (to be filled in). */
import type { KernelTable } from './common.js';

export const FP16_KERNELS: KernelTable = {};
