/** The pool kernels of the CUDA engine (to be filled in). */
import type { KernelTable } from './common.js';

export const POOL_KERNELS: KernelTable = {};
