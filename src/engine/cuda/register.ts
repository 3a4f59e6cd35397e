/**
 * Registers a CUDA backend under `name` ('cuda' on the GPU, 'cuda-host' for the emulated build the
 * tests use): every kernel the cpu backend has, native where ./kernels has a version and through the
 * counted host fallback otherwise, plus simtrip's own kernels that exist natively only.
 */
import { tf } from '../tf.js';
import { BATCH_NORM_SPEC, GROUP_NORM_SPEC, registerNormGradient } from '../custom_kernels.js';
import { countNative } from '../kernel_stats.js';
import { CudaBackend } from './backend.js';
import type { CudaKernel } from './kernels/common.js';
import { CUDA_KERNELS } from './kernels/index.js';
import type { CudaAddon, CudaDeviceInfo } from './native.js';

/** Runs a native kernel inside a kernel call (the scope of the float32 copies of half-stored inputs). */
function callNative(native: CudaKernel, args: Parameters<tf.KernelFunc>[0], backend: CudaBackend): ReturnType<CudaKernel> {
  backend.beginKernel();
  try {
    return native(args, backend);
  } finally {
    backend.endKernel();
  }
}

function withHostFallback(kernelName: string, native: CudaKernel, cpuKernel: tf.KernelFunc): tf.KernelFunc {
  return (args) => {
    const backend = args.backend as CudaBackend;
    const out = callNative(native, args, backend);
    if (out === null) return backend.runOnHost(kernelName, cpuKernel, args);
    countNative(kernelName);
    return out;
  };
}

function hostOnly(kernelName: string, cpuKernel: tf.KernelFunc): tf.KernelFunc {
  return (args) => (args.backend as CudaBackend).runOnHost(kernelName, cpuKernel, args);
}

function nativeOnly(kernelName: string, native: CudaKernel): tf.KernelFunc {
  return (args) => {
    const out = callNative(native, args, args.backend as CudaBackend);
    if (out === null) throw new Error(`${kernelName}: the CUDA engine does not cover this case and the kernel has no cpu version`);
    countNative(kernelName);
    return out;
  };
}

/** Idempotent per name. The backend object is created by tfjs when the backend is first selected. */
export function registerCudaBackend(addon: CudaAddon, device: CudaDeviceInfo, name: string): void {
  if (tf.findBackendFactory(name)) return;
  const cpuKernels = new Map(tf.getKernelsForBackend('cpu').map((k) => [k.kernelName, k]));
  if (cpuKernels.size === 0) throw new Error('tfjs-backend-cpu registered no kernels');
  for (const [kernelName, config] of cpuKernels) {
    const native = CUDA_KERNELS[kernelName];
    tf.registerKernel({
      kernelName,
      backendName: name,
      kernelFunc: native ? withHostFallback(kernelName, native, config.kernelFunc) : hostOnly(kernelName, config.kernelFunc),
    });
  }
  for (const [kernelName, native] of Object.entries(CUDA_KERNELS)) {
    if (!cpuKernels.has(kernelName)) tf.registerKernel({ kernelName, backendName: name, kernelFunc: nativeOnly(kernelName, native) });
  }
  for (const spec of [BATCH_NORM_SPEC, GROUP_NORM_SPEC]) {
    if (CUDA_KERNELS[spec.name]) registerNormGradient(spec);
  }
  // Priority 0 (cpu has 1): a program that never picks a backend keeps getting the cpu backend.
  tf.registerBackend(name, () => new CudaBackend(addon, device, name), 0);
}
