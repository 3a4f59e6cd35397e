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
 *
 * Host overhead per op, which decides how far ahead of the GPU a step runs:
 *  - scalar constants (tfjs makes a tensor of every JS number in an expression) are uploaded once and
 *    shared: later writes of the same value take a reference, not a pinned copy, an upload and an event;
 *  - a convolution filter's KRSC copy (cuDNN's layout) is made once per weight version, kept with the
 *    weight's entry and freed with it, instead of reordered on every forward and backward-data call;
 *  - a batch staged with stageUpload() is copied into pinned memory on a worker thread, and its write
 *    only queues the copy to the device;
 *  - async reads (tensor.data()) queue their copy and poll for it, never draining the stream.
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

interface FillAddon {
  eltwiseFill(dst: number, n: number, bits: number): void;
}

interface TransposeAddon {
  transpose2d(src: number, dst: number, batch: number, rows: number, cols: number, elementBytes: number): void;
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
  /** A cached scalar constant: shared by every tensor of its value, never freed. */
  constant?: boolean;
  /** KRSC copies of this filter (device pointers) by element size, made by krscFilter and freed with the entry. */
  krsc?: { 2?: number; 4?: number };
}

/** Scalar constants cached on the device at most: beyond, scalars are uploaded as any tensor. */
const MAX_CONSTANTS = 4096;

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

/**
 * The 32-bit word every element of a float32 or int32 array of more than one element holds, or null
 * (arrays of data differ within their first few elements, so the scan costs nothing for them).
 */
function uniformWord(values: Float32Array | Int32Array): number | null {
  if (values.length < 2 || values.length > 65536) return null;
  const words = new Int32Array(values.buffer, values.byteOffset, values.length);
  const first = words[0]!;
  for (let i = 1; i < words.length; i++) if (words[i] !== first) return null;
  return first;
}

/** A host array for an entry's device bytes: halves, float32 (complex64 as pairs) or int32 words. */
function hostArray(entry: TensorEntry): Uint16Array | Float32Array | Int32Array {
  if (entry.half) return new Uint16Array(entry.size);
  const count = entry.dtype === 'complex64' ? entry.size * 2 : entry.size;
  return entry.dtype === 'float32' || entry.dtype === 'complex64' ? new Float32Array(count) : new Int32Array(count);
}

/** The values tfjs expects from the device bytes read into `out`. */
function fromDevice(entry: TensorEntry, out: Uint16Array | Float32Array | Int32Array): BackendValues {
  if (entry.half) return float16ArrayToFloat32(out as Uint16Array);
  return entry.dtype === 'bool' ? Uint8Array.from(out) : (out as Float32Array | Int32Array);
}

export class CudaBackend extends tf.KernelBackend {
  readonly data: tf.DataStorage<TensorEntry>;
  /** Reads wait for the kernels queued on the GPU (src/engine/device_queue.ts). */
  readonly queuesOnDevice = true;
  private host: MathBackendCPU | null = null;
  private disposed = false;
  /** Kernel calls in progress (a kernel may run others), and the float32 copies of halves they asked for. */
  private callDepth = 0;
  private floatCopies = new Map<TensorEntry, number>();
  /** Device scalars by dtype and bits. */
  private constants = new Map<string, TensorEntry>();
  /** Arrays staged for upload (stageUpload) and their tickets; a ticket is dropped if its array is never written. */
  private staged = new WeakMap<ArrayBufferView, number>();
  private unusedStaging = new FinalizationRegistry<number>((ticket) => this.addon.dropStaged(ticket));

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
    if (values && size === 1) {
      const shared = this.constant(values, dtype);
      if (shared) return { ...shared, refCount };
    }
    const bytes = size * deviceElementBytes(dtype);
    const ptr = bytes > 0 ? this.addon.alloc(bytes) : 0;
    if (values && bytes > 0) {
      try {
        this.upload(ptr, values, dtype, bytes);
      } catch (e) {
        this.addon.free(ptr);
        throw e;
      }
    }
    return { ptr, bytes, dtype, size, refCount };
  }

  private upload(ptr: number, values: BackendValues, dtype: tf.DataType, bytes: number): void {
    const ticket = ArrayBuffer.isView(values) ? this.staged.get(values) : undefined;
    if (ticket !== undefined && (dtype === 'float32' ? values instanceof Float32Array : values instanceof Int32Array) && (values as Float32Array).byteLength === bytes) {
      this.staged.delete(values as Float32Array);
      this.unusedStaging.unregister(values as Float32Array);
      this.addon.uploadStaged(ptr, ticket);
      return;
    }
    const words = deviceArray(values, dtype);
    // tfjs makes a tensor of zeros for every output without a gradient (a norm's statistics, twice
    // per norm and step) and of ones to start gradients: fills on the device, not copies.
    const word = uniformWord(words);
    if (word === 0) return this.addon.zero(ptr, bytes);
    if (word !== null) return (this.addon as CudaAddon & FillAddon).eltwiseFill(ptr, words.length, word);
    this.addon.upload(ptr, words);
  }

  /** The shared device copy of a scalar of float32, int32 or bool (uploaded on first use). */
  private constant(values: BackendValues, dtype: tf.DataType): TensorEntry | null {
    if (dtype !== 'float32' && dtype !== 'int32' && dtype !== 'bool') return null;
    const word = deviceArray(values, dtype);
    const key = `${dtype === 'float32' ? 'f' : 'i'}${new Int32Array(word.buffer, word.byteOffset, 1)[0]}`;
    const hit = this.constants.get(key);
    if (hit) return hit;
    if (this.constants.size >= MAX_CONSTANTS) return null;
    const ptr = this.addon.alloc(4);
    try {
      this.addon.upload(ptr, word);
    } catch (e) {
      this.addon.free(ptr);
      throw e;
    }
    const entry: TensorEntry = { ptr, bytes: 4, dtype, size: 1, refCount: 0, constant: true };
    this.constants.set(key, entry);
    return entry;
  }

  /**
   * Copies `values` into pinned memory on a worker thread; a later write of this very array (a tensor
   * made from it) then queues its copy to the device without copying on the main thread. The array
   * must not change until it is written.
   */
  async stageUpload(values: Float32Array | Int32Array): Promise<void> {
    if (this.staged.has(values) || values.byteLength === 0) return;
    const ticket = await this.addon.stageUpload(values);
    this.staged.set(values, ticket);
    this.unusedStaging.register(values, ticket, values);
  }

  /**
   * The filter in cuDNN's KRSC (OHWI) layout, from tfjs' HWIO [r, s, c, k], as halves (a half-stored
   * filter's own bits) or float32: made once per weight version (tensor data never change in place)
   * and freed with the filter's entry.
   */
  krscFilter(filter: tf.TensorInfo, halves: boolean): number {
    const entry = this.data.get(filter.dataId);
    const elementBytes = halves ? 2 : 4;
    const known = entry.krsc?.[elementBytes];
    if (known !== undefined) return known;
    if (halves && !entry.half) throw new Error('krscFilter: halves of a filter that is not stored as halves');
    const k = filter.shape[3]!;
    const krsc = this.addon.alloc(entry.size * elementBytes);
    try {
      const src = halves ? entry.ptr : this.ptr(filter);
      (this.addon as CudaAddon & TransposeAddon).transpose2d(src, krsc, 1, entry.size / k, k, elementBytes);
    } catch (e) {
      this.addon.free(krsc);
      throw e;
    }
    entry.krsc = { ...entry.krsc, [elementBytes]: krsc };
    return krsc;
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
    if (entry.ptr && !entry.constant) this.addon.free(entry.ptr);
    for (const copy of Object.values(entry.krsc ?? {})) this.addon.free(copy);
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
    const out = hostArray(entry);
    if (entry.bytes > 0) this.addon.download(entry.ptr, out);
    return fromDevice(entry, out);
  }

  /**
   * Reads without draining the stream or blocking the event loop (signal handlers, progress bars): the
   * copy is queued at once, so the values are those of this moment even if the tensor is disposed or
   * reused before the copy runs (a free is ordered after it on the stream), and the read completes
   * when that copy has run, whatever was queued after it.
   */
  override async read(dataId: tf.DataId): Promise<BackendValues> {
    const entry = this.data.get(dataId);
    if (entry.strings) return entry.strings;
    const out = hostArray(entry);
    if (entry.bytes === 0) return fromDevice(entry, out);
    const ticket = this.addon.readAsync(entry.ptr, entry.bytes);
    for (let polls = 0; !this.addon.readDone(ticket); polls++) {
      await new Promise((resolve) => (polls < 32 ? setImmediate(resolve) : setTimeout(resolve, 1)));
    }
    this.addon.readCollect(ticket, out);
    return fromDevice(entry, out);
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
