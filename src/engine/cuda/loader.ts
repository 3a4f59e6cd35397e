/**
 * Entry point of the CUDA engine: loads the addon, starts the device, finds cuDNN and cuBLAS, and
 * registers the tfjs backend; or says exactly what is missing and how to install it, so `auto` moves
 * on quietly and `simtrip doctor` can explain. On a machine without a GPU this costs a few
 * milliseconds: the addon loads, the CUDA runtime finds no driver, and nothing else happens.
 */
import { execFileSync } from 'node:child_process';
import { findLibraries, INSTALL_HINTS, type LibrarySearch } from './libraries.js';
import { loadCudaAddon, type CudaDeviceInfo, type CudaFlavour } from './native.js';
import { keepConvPlans } from './conv_plan_file.js';
import { engineIdentity } from './identity.js';

export interface CudaLoadOptions {
  /**
   * 'cuda' (default) is the GPU build; 'host' the emulated build the tests use. SIMTRIP_CUDA_FLAVOUR=host
   * makes the host build stand in for the GPU build (tests of engine selection on machines without a GPU).
   */
  flavour?: CudaFlavour;
  /** The tfjs backend name to register: 'cuda' by default, 'cuda-host' for the host build. */
  backendName?: string;
  device?: number;
  /** Host build only: pretend the device has this many bytes (tests of out-of-memory handling). */
  memoryLimit?: number;
}

export type CudaLoad =
  | { ok: true; backendName: string; detail: string; device: CudaDeviceInfo; flavour: CudaFlavour }
  | { ok: false; reason: string; hint: string };

function version(v: number, scheme: 'cuda' | 'cudnn' | 'cublas'): string {
  if (!v) return 'none';
  if (scheme === 'cuda') return `${Math.floor(v / 1000)}.${Math.floor((v % 1000) / 10)}`;
  // cuDNN 9: major*10000 + minor*100 + patch; cuBLAS: major*10000 + minor*100 + patch too.
  return `${Math.floor(v / 10000)}.${Math.floor((v % 10000) / 100)}.${v % 100}`;
}

export function describeDevice(d: CudaDeviceInfo): string {
  if (d.emulated) return 'host emulation of the CUDA engine (tests only, no GPU)';
  const gib = (d.totalBytes / 2 ** 30).toFixed(1);
  return `${d.name} (sm_${d.computeCapability.replace('.', '')}, ${gib} GiB), driver CUDA ${version(d.driverVersion, 'cuda')}, runtime ${version(d.runtimeVersion, 'cuda')}, cuDNN ${version(d.cudnnVersion, 'cudnn')}, cuBLAS ${version(d.cublasVersion, 'cublas')}`;
}

/** The oldest driver branch that runs the CUDA 13 runtime the GPU build links in. */
export const MIN_DRIVER = 580;

/**
 * What nvidia-smi says when the CUDA runtime found no usable device: no driver at all, no GPU, or a
 * driver too old for the runtime. Only asked after a failure, so machines with a GPU pay nothing.
 */
export function describeDriverProblem(runtimeMessage: string, query: () => string = querySmi): string {
  let listing: string;
  try {
    listing = query().trim();
  } catch {
    return `${runtimeMessage}; nvidia-smi is not available, so no NVIDIA driver is installed`;
  }
  if (!listing) return `${runtimeMessage}; nvidia-smi lists no GPU`;
  const [name, driver] = listing.split('\n')[0]!.split(',').map((s) => s.trim());
  const major = Number(driver?.split('.')[0]);
  if (/insufficient/i.test(runtimeMessage) && Number.isFinite(major) && major < MIN_DRIVER) {
    return `${name} has driver ${driver}, too old for the CUDA 13 runtime (needs R${MIN_DRIVER} or newer)`;
  }
  return `${runtimeMessage} (nvidia-smi: ${name}, driver ${driver})`;
}

function querySmi(): string {
  return execFileSync('nvidia-smi', ['--query-gpu=name,driver_version', '--format=csv,noheader'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
    timeout: 5000,
  });
}

function hintFor(message: string): string {
  if (/cudnn/i.test(message)) return INSTALL_HINTS.cudnn;
  if (/cublas/i.test(message)) return INSTALL_HINTS.cublas;
  return INSTALL_HINTS.driver;
}

let keptPlans = false;

export async function loadCuda(options: CudaLoadOptions = {}): Promise<CudaLoad> {
  const flavour = options.flavour ?? (process.env.SIMTRIP_CUDA_FLAVOUR === 'host' ? 'host' : 'cuda');
  const backendName = options.backendName ?? (flavour === 'cuda' ? 'cuda' : 'cuda-host');
  if (process.env.SIMTRIP_CUDA_DISABLE === '1') {
    return { ok: false, reason: 'disabled by SIMTRIP_CUDA_DISABLE=1', hint: 'unset SIMTRIP_CUDA_DISABLE' };
  }
  const loaded = loadCudaAddon(flavour);
  if (!loaded.ok) return loaded;
  // The device first: on a machine without a GPU this fails at once, before the library search (which
  // asks Python for pip's nvidia packages) costs anything. Only the GPU build loads libraries.
  let device: CudaDeviceInfo;
  let libs: LibrarySearch = { cudnn: [], cublas: [], searched: [] };
  try {
    device = loaded.addon.init(options.device ?? 0, options.memoryLimit ?? 0, '', '');
    if (flavour === 'cuda') {
      libs = findLibraries();
      device = loaded.addon.init(options.device ?? 0, options.memoryLimit ?? 0, libs.cudnn.join('\n'), libs.cublas.join('\n'));
    }
  } catch (e) {
    const message = ((e as Error).message ?? String(e)).split('\n')[0]!.replace(/^init: /, '');
    if (/cudnn|cublas/i.test(message)) {
      const searched = libs.searched.length ? ` (searched ${libs.searched.join(', ')})` : '';
      return { ok: false, reason: `${message}${searched}`, hint: hintFor(message) };
    }
    return { ok: false, reason: describeDriverProblem(message), hint: INSTALL_HINTS.driver };
  }
  // cuDNN's searches shared with the other processes of a device run.
  const plans = process.env.SIMTRIP_CUDA_CONV_PLANS;
  if (plans && !keptPlans) {
    keptPlans = true;
    keepConvPlans(loaded.addon, engineIdentity(device, flavour), plans);
  }
  // Imported only now so that a machine without a GPU never pays for loading the kernels.
  const { registerCudaBackend } = await import('./register.js');
  try {
    registerCudaBackend(loaded.addon, device, backendName);
  } catch (e) {
    return { ok: false, reason: `registering the ${backendName} backend failed: ${(e as Error).message}`, hint: 'use engine.backend: onednn or cpu' };
  }
  return { ok: true, backendName, detail: describeDevice(device), device, flavour };
}
