/**
 * The tfjs backend 'cuda': tensor data live in GPU memory and move to the host only when something
 * reads them (a loss, a metric, a checkpoint, features).
 *
 * What this class owns is storage: device allocations per dataId with tfjs' reference counting,
 * uploads on write, downloads on read, and the host fallback for kernels without a native version
 * (copy the inputs to a private cpu backend, run its kernel, copy the outputs back; counted in
 * kernel_stats so profiles can list every one). The kernels themselves are in ./kernels/.
 *
 * dtypes on the device: float32 and int32 as themselves, bool as int32 0/1 (one element size for every
 * integer kernel), complex64 as interleaved float32 pairs (no native kernel takes it). Strings stay on
 * the host: no kernel computes on them.
 *
 * Half storage (engine.precision mixed16): a float32 tensor whose values are all on the float16 grid
 * (the output of roundToHalf) is stored as IEEE halves, half the bytes. tfjs still sees float32. A
 * kernel that reads halves itself takes `storagePtr`; every other kernel asks `ptr` as before and gets
 * a float32 copy that lives until that kernel call ends, so no kernel has to know about halves to be
 * correct, and the saved activations of a mixed16 step take half the memory.
 */
import '@tensorflow/tfjs-backend-cpu';
import { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import { tf } from '../tf.js';
import { countFallback } from '../kernel_stats.js';
import { float16ArrayToFloat32 } from '../../io/float16.js';
import { sizeOf } from '../../util/values.js';
import type { CudaAddon, CudaDeviceInfo } from './native.js';

interface HalfAddon {
  /** out (float32) = the halves at src, exactly. */
  halfToFloat(src: number, out: number, n: number): void;
}

interface MathModeAddon {
  setMathMode(convTf32: boolean, matmulTf32: boolean): void;
}

type BackendValues = tf.backend_util.BackendValues;

interface TensorEntry {
  /** Device pointer, 0 for strings and empty tensors. */
  ptr: number;
  bytes: number;
  dtype: tf.DataType;
  /** Number of elements. */
  size: number;
  refCount: number;
  /** String tensors only. */
  strings?: Uint8Array[];
  /** A float32 tensor stored as IEEE halves (its values are on the half grid). */
  half?: boolean;
}

/** Bytes per element on the device. */
export function deviceElementBytes(dtype: tf.DataType): number {
  switch (dtype) {
    case 'complex64':
      return 8;
    case 'string':
      return 0;
    default:
      return 4;
  }
}

/** Values as the device stores them: Float32Array for float32/complex64, Int32Array for int32 and bool. */
function deviceArray(values: BackendValues, dtype: tf.DataType): Float32Array | Int32Array {
  if (dtype === 'float32' || dtype === 'complex64') return values instanceof Float32Array ? values : Float32Array.from(values as ArrayLike<number>);
  return values instanceof Int32Array ? values : Int32Array.from(values as ArrayLike<number>);
}

export class CudaBackend extends tf.KernelBackend {
  readonly data: tf.DataStorage<TensorEntry>;
  private host: MathBackendCPU | null = null;
  private disposed = false;
  /** Kernel calls in progress (a kernel may run others), and the float32 copies of halves they asked for. */
  private callDepth = 0;
  private floatCopies = new Map<TensorEntry, number>();

  constructor(
    readonly addon: CudaAddon,
    readonly device: CudaDeviceInfo,
    readonly backendName: string,
  ) {
    super();
    this.data = new tf.DataStorage(this, tf.engine());
  }

  // ---- storage ----

  private store(values: BackendValues | null, dtype: tf.DataType, size: number, refCount: number): TensorEntry {
    if (dtype === 'string') return { ptr: 0, bytes: 0, dtype, size, refCount, strings: (values ?? []) as Uint8Array[] };
    const bytes = size * deviceElementBytes(dtype);
    const ptr = bytes > 0 ? this.addon.alloc(bytes) : 0;
    if (values && bytes > 0) {
      try {
        this.addon.upload(ptr, deviceArray(values, dtype));
      } catch (e) {
        this.addon.free(ptr);
        throw e;
      }
    }
    return { ptr, bytes, dtype, size, refCount };
  }

  override write(values: BackendValues, shape: number[], dtype: tf.DataType): tf.DataId {
    const dataId = {};
    this.data.set(dataId, this.store(values, dtype, sizeOf(shape), 1));
    return dataId;
  }

  override move(dataId: tf.DataId, values: BackendValues, shape: number[], dtype: tf.DataType, refCount: number): void {
    this.data.set(dataId, this.store(values, dtype, sizeOf(shape), refCount));
  }

  /** A tensor with the given values, or with uninitialised device memory for a kernel to fill. */
  makeTensorInfo(shape: number[], dtype: tf.DataType, values?: BackendValues | string[]): tf.TensorInfo {
    let v = (values ?? null) as BackendValues | null;
    if (dtype === 'string' && values && values.length > 0 && typeof values[0] === 'string') {
      v = (values as string[]).map((s) => tf.util.encodeString(s));
    }
    const dataId = {};
    this.data.set(dataId, this.store(v, dtype, sizeOf(shape), 1));
    return { dataId, shape, dtype };
  }

  /** A float32 tensor for a kernel to fill, stored as halves: only for values on the half grid. */
  makeHalfTensorInfo(shape: number[]): tf.TensorInfo {
    const size = sizeOf(shape);
    const bytes = size * 2;
    const dataId = {};
    this.data.set(dataId, { ptr: bytes > 0 ? this.addon.alloc(bytes) : 0, bytes, dtype: 'float32', size, refCount: 1, half: true });
    return { dataId, shape, dtype: 'float32' };
  }

  isHalf(t: tf.TensorInfo): boolean {
    return this.data.get(t.dataId).half === true;
  }

  /** The tensor's own memory, whatever its storage: for kernels that read halves themselves. */
  storagePtr(t: tf.TensorInfo): number {
    return this.data.get(t.dataId).ptr;
  }

  /**
   * The device pointer of a tensor's values in its dtype (0 when it is empty). For a half-stored
   * tensor, a float32 copy made for the kernel call in progress and freed when it ends.
   */
  ptr(t: tf.TensorInfo): number {
    const entry = this.data.get(t.dataId);
    if (!entry.half || entry.size === 0) return entry.ptr;
    const copy = this.floatCopies.get(entry);
    if (copy !== undefined) return copy;
    if (this.callDepth === 0) throw new Error('the float32 view of a half-stored tensor exists only inside a kernel call');
    const out = this.addon.alloc(entry.size * 4);
    (this.addon as CudaAddon & HalfAddon).halfToFloat(entry.ptr, out, entry.size);
    this.floatCopies.set(entry, out);
    return out;
  }

  /** Around every kernel call: the float32 copies of halves it asked for go when the outermost ends. */
  beginKernel(): void {
    this.callDepth++;
  }

  endKernel(): void {
    if (--this.callDepth > 0) return;
    // Stream-ordered frees: the kernels that read the copies were queued before.
    for (const copy of this.floatCopies.values()) this.addon.free(copy);
    this.floatCopies.clear();
  }

  override refCount(dataId: tf.DataId): number {
    return this.data.has(dataId) ? this.data.get(dataId).refCount : 0;
  }

  override incRef(dataId: tf.DataId): void {
    this.data.get(dataId).refCount++;
  }

  override numDataIds(): number {
    return this.data.numDataIds();
  }

  override disposeData(dataId: tf.DataId, force = false): boolean {
    if (!this.data.has(dataId)) return true;
    const entry = this.data.get(dataId);
    entry.refCount--;
    if (!force && entry.refCount > 0) return false;
    if (entry.ptr) this.addon.free(entry.ptr);
    this.data.delete(dataId);
    return true;
  }

  disposeIntermediateTensorInfo(info: tf.TensorInfo): void {
    this.disposeData(info.dataId);
  }

  // ---- reads ----

  override readSync(dataId: tf.DataId): BackendValues {
    const entry = this.data.get(dataId);
    if (entry.strings) return entry.strings;
    if (entry.half) {
      const halves = new Uint16Array(entry.size);
      if (entry.bytes > 0) this.addon.download(entry.ptr, halves);
      return float16ArrayToFloat32(halves);
    }
    const count = entry.dtype === 'complex64' ? entry.size * 2 : entry.size;
    const out = entry.dtype === 'float32' || entry.dtype === 'complex64' ? new Float32Array(count) : new Int32Array(count);
    if (entry.bytes > 0) this.addon.download(entry.ptr, out);
    return entry.dtype === 'bool' ? Uint8Array.from(out) : out;
  }

  /** Waits for the GPU without blocking the event loop (signal handlers, progress bars), then reads. */
  override async read(dataId: tf.DataId): Promise<BackendValues> {
    const event = this.addon.recordEvent();
    try {
      for (let polls = 0; !this.addon.eventDone(event); polls++) {
        await new Promise((resolve) => (polls < 32 ? setImmediate(resolve) : setTimeout(resolve, 1)));
      }
    } finally {
      this.addon.releaseEvent(event);
    }
    return this.readSync(dataId);
  }

  override timerAvailable(): boolean {
    return true;
  }

  /** Wall time of f with the GPU drained before and after: what the queued kernels really took. */
  override async time(f: () => void): Promise<tf.BackendTimingInfo> {
    this.addon.synchronize();
    const t0 = performance.now();
    f();
    this.addon.synchronize();
    return { kernelMs: performance.now() - t0 };
  }

  override memory(): { unreliable: boolean; numBytesInGPU: number; numBytesInGPUAllocated: number; numBytesInGPUFree: number; peakBytesInGPU: number } {
    const m = this.addon.memory();
    return { unreliable: false, numBytesInGPU: m.inUse, numBytesInGPUAllocated: m.reserved, numBytesInGPUFree: m.free, peakBytesInGPU: m.peak };
  }

  /**
   * Whether convolutions and matrix products may use TF32 tensor cores (faster, 10-bit mantissa
   * products; engine.tf32). Both are exact fp32 until this is called.
   */
  setTf32(convs: boolean, matmuls: boolean): void {
    (this.addon as CudaAddon & MathModeAddon).setMathMode(convs, matmuls);
  }

  override floatPrecision(): 32 {
    return 32;
  }

  override epsilon(): number {
    return super.epsilon();
  }

  override dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.host?.dispose();
  }

  // ---- host fallback ----

  private hostBackend(): MathBackendCPU {
    this.host ??= new MathBackendCPU();
    return this.host;
  }

  /** A copy of a device tensor in the private cpu backend. */
  private toHost(cpu: MathBackendCPU, t: tf.TensorInfo): tf.TensorInfo {
    const values = this.readSync(t.dataId);
    if (t.dtype !== 'complex64') return cpu.makeTensorInfo([...t.shape], t.dtype, values);
    // The cpu backend keeps complex tensors as a pair of real tensors joined by its Complex kernel.
    const parts = tf.backend_util.splitRealAndImagArrays(values as Float32Array);
    const real = cpu.makeTensorInfo([...t.shape], 'float32', parts.real);
    const imag = cpu.makeTensorInfo([...t.shape], 'float32', parts.imag);
    const complex = tf.getKernel(tf.Complex, 'cpu')!.kernelFunc({ inputs: { real, imag }, backend: cpu, attrs: {} }) as tf.TensorInfo;
    cpu.disposeIntermediateTensorInfo(real);
    cpu.disposeIntermediateTensorInfo(imag);
    return complex;
  }

  /**
   * Runs the cpu backend's `kernel` on copies of the inputs and uploads its outputs: correct for any
   * kernel, and slow (two synchronising copies), which is why every run is counted.
   */
  runOnHost(kernelName: string, kernel: tf.KernelFunc, args: Parameters<tf.KernelFunc>[0]): tf.TensorInfo | tf.TensorInfo[] {
    countFallback(kernelName);
    const cpu = this.hostBackend();
    // Kernels of several tensors (AddN, Concat, Pack) take their inputs as an array: keep it one.
    const inputs = (Array.isArray(args.inputs) ? [] : {}) as tf.NamedTensorInfoMap;
    const created: tf.TensorInfo[] = [];
    try {
      for (const [name, t] of Object.entries(args.inputs)) {
        if (!t) continue;
        const copy = this.toHost(cpu, t);
        inputs[name] = copy;
        created.push(copy);
      }
      const out = kernel({ inputs, attrs: args.attrs, backend: cpu });
      const outs = Array.isArray(out) ? out : [out];
      const results = outs.map((o) => this.makeTensorInfo([...o.shape], o.dtype, cpu.readSync(o.dataId)));
      for (const o of outs) cpu.disposeData(o.dataId);
      return Array.isArray(out) ? results : results[0]!;
    } finally {
      for (const t of created) cpu.disposeData(t.dataId);
    }
  }
}
