/**
 * Finds and loads the CUDA engine's addon (native/cuda/, built by scripts/build-cuda.mjs):
 *  - 'cuda': build/Release/simtrip_cuda.node, nvcc-built, runs on the GPU;
 *  - 'host': build/Release/simtrip_cuda_host.node, the same kernels under the CUDA emulator, which the
 *    tests run on machines without a GPU. Never picked by `auto`.
 *
 * Device pointers cross as numbers (0 = null). Kernel families add their own functions to the addon;
 * each kernel module declares the ones it calls (see kernels/*.ts).
 */
import { loadBuiltAddon, type AddonLoad } from '../built_addon.js';

export type CudaFlavour = 'cuda' | 'host';

/** What init() found: the device and the libraries it loaded. */
export interface CudaDeviceInfo {
  name: string;
  computeCapability: string;
  smCount: number;
  totalBytes: number;
  /** CUDA version the driver supports, e.g. 13000. */
  driverVersion: number;
  /** The CUDA runtime linked into the addon. */
  runtimeVersion: number;
  /** cudnnGetVersion(), e.g. 91400; 0 in the host build. */
  cudnnVersion: number;
  cublasVersion: number;
  cudnnPath: string;
  cublasPath: string;
  emulated: boolean;
}

export interface CudaMemory {
  /** Bytes held by live allocations (tensors and scratch). */
  inUse: number;
  /** Most inUse since resetPeak. */
  peak: number;
  /** Bytes the caching pool holds from the driver. */
  reserved: number;
  reservedPeak: number;
  free: number;
  total: number;
}

/** What the runtime did since resetCounters() (native/cuda/runtime.h's Counters). */
export interface CudaCounters {
  allocs: number;
  frees: number;
  uploads: number;
  uploadBytes: number;
  /** Uploads whose copy into pinned memory ran on a worker thread. */
  stagedUploads: number;
  /** Blocking reads: each one waits for everything queued. */
  downloads: number;
  /** Reads queued on the stream and collected once their copy ran. */
  asyncReads: number;
  /** Waits for everything queued (downloads, synchronize). */
  syncs: number;
  /** Waits for one queued read that was collected before its copy ran. */
  eventWaits: number;
  /** Our kernels launched (cuDNN and cuBLAS calls count as native calls). */
  launches: number;
  /** The blocks of their grids. */
  blocks: number;
  /** Native calls by addon function. */
  calls: Record<string, number>;
}

/** One convolution's algorithm search (native/cuda/conv_algos.h), for reports. */
export interface ConvPlanInfo {
  /** Direction (0 forward, 1 backward data, 2 backward filter), storage, math mode and the shape's numbers. */
  key: string;
  /** Usable algorithms, fastest first: cuDNN's algorithm and math type enums, workspace bytes, measured ms. */
  algorithms: Array<{ algo: number; mathType: number; workspace: number; ms: number }>;
  /** Index of the algorithm the last call ran (-1: none yet). */
  used: number;
  /** Calls run with this search's choices so far. */
  calls: number;
  searchWorkspace: number;
  /** Reused from an earlier process's search. */
  loaded: boolean;
}

/** The addon's core: device start-up, memory and copies (native/cuda/device.cc). */
export interface CudaAddon {
  readonly flavour: CudaFlavour;
  /**
   * cudnn / cublas: newline-separated candidate files, the first that loads is used. Without any, only
   * the device starts (library versions 0); a later call with candidates loads the libraries.
   */
  init(device: number, memoryLimit: number, cudnn: string, cublas: string): CudaDeviceInfo;
  alloc(bytes: number): number;
  free(ptr: number): void;
  upload(ptr: number, values: ArrayBufferView): void;
  download(ptr: number, out: ArrayBufferView): void;
  copy(dst: number, src: number, bytes: number): void;
  zero(ptr: number, bytes: number): void;
  synchronize(): void;
  recordEvent(): number;
  eventDone(event: number): boolean;
  releaseEvent(event: number): void;
  /** Queues a copy of the bytes into pinned memory (a later free is ordered after it): a ticket. */
  readAsync(ptr: number, bytes: number): number;
  /** Whether the queued copy has run; never waits. */
  readDone(ticket: number): boolean;
  /** Copies the read bytes into `out` (waiting for that copy alone if needed) and frees the ticket. */
  readCollect(ticket: number, out: ArrayBufferView): void;
  /** The array's bytes copied into pinned memory on a worker thread: resolves to a ticket for uploadStaged. */
  stageUpload(values: ArrayBufferView): Promise<number>;
  uploadStaged(ptr: number, ticket: number): void;
  dropStaged(ticket: number): void;
  counters(): CudaCounters;
  resetCounters(): void;
  convPlans(): ConvPlanInfo[];
  /** The searches of this process as text, for loadConvPlans in a later one on the same device and libraries. */
  saveConvPlans(): string;
  /** Returns how many searches were loaded. */
  loadConvPlans(text: string): number;
  memory(): CudaMemory;
  resetPeak(): void;
}

/**
 * The host build's test controls (native/cuda/host/emulate.cc): injected faults ('faultFree',
 * 'faultLaunch', 'faultSync' after n operations; 'failKernel' / 'skipKernel' by name), reads that are
 * not ready yet ('pendingPolls'), smaller launch limits ('maxGridY', 'smCount', ...), and 'clear'.
 */
export interface HostEmulation {
  emulate(setting: string, value?: number | string): void;
}

export const ADDON_FILES: Record<CudaFlavour, { file: string; status: string }> = {
  cuda: { file: 'build/Release/simtrip_cuda.node', status: 'build/simtrip_cuda.status.json' },
  host: { file: 'build/Release/simtrip_cuda_host.node', status: 'build/simtrip_cuda_host.status.json' },
};

export type CudaAddonLoad = AddonLoad<CudaAddon>;

const REBUILD_HINT = 'install the CUDA toolkit (nvcc), then npm rebuild simtrip (or node scripts/build-cuda.mjs in a checkout)';

const cache = new Map<CudaFlavour, CudaAddonLoad>();

export function loadCudaAddon(flavour: CudaFlavour): CudaAddonLoad {
  const hit = cache.get(flavour);
  if (hit) return hit;
  const result = loadBuiltAddon<CudaAddon>({
    ...ADDON_FILES[flavour],
    what: 'CUDA addon',
    hint: REBUILD_HINT,
    check(addon) {
      if (addon.flavour !== flavour || typeof addon.init !== 'function') throw new Error('not a simtrip CUDA addon');
    },
  });
  cache.set(flavour, result);
  return result;
}
