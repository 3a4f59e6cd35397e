/**
 * What the CUDA engine's results depend on, as text: the device, its driver and CUDA runtime, the
 * cuDNN and cuBLAS loaded, and the addon's build. Cached results (the self-check, cuDNN's algorithm
 * searches) hold only for the identity they were made with.
 */
import { statSync } from 'node:fs';
import path from 'node:path';
import { packageRoot } from '../package_root.js';
import { ADDON_FILES, type CudaDeviceInfo, type CudaFlavour } from './native.js';

export function engineIdentity(device: CudaDeviceInfo, flavour: CudaFlavour): string {
  const file = path.join(packageRoot(), ADDON_FILES[flavour].file);
  let build = 'unknown build';
  try {
    const s = statSync(file);
    build = `${s.size} bytes, ${s.mtime.toISOString()}`;
  } catch {
    // no file to describe: the identity still separates devices and libraries
  }
  return [
    `${device.name} sm_${device.computeCapability.replace('.', '')}`,
    `driver ${device.driverVersion}, runtime ${device.runtimeVersion}`,
    `cuDNN ${device.cudnnVersion} ${device.cudnnPath}`,
    `cuBLAS ${device.cublasVersion} ${device.cublasPath}`,
    `addon ${flavour} ${build}`,
  ].join('; ');
}
