/**
 * A restricted unpickler for what torch.save writes: state dicts, tensors and the plain records around
 * them. Built on the `pickleparser` package, held to an allow-list:
 *
 *   torch._utils._rebuild_tensor_v2 / _rebuild_tensor      a TorchTensor (storage, offset, shape, stride)
 *   torch._utils._rebuild_parameter(_with_state)           the parameter's tensor
 *   torch.<Type>Storage, torch.cuda.<Type>Storage           storage types (persistent ids name them)
 *   collections.OrderedDict, builtins set/frozenset         Map, arrays
 *   _codecs.encode(s, 'latin1'), builtins.bytearray         bytes, as protocol 2 writes them
 *   torch.Size                                              a tuple (array)
 *   torch.device                                            a TorchDevice
 *   argparse.Namespace                                      a PyRecord of its attributes
 *
 * Every global a pickle names goes through one resolver: anything else is refused with a
 * ForbiddenGlobalError naming it, before any part of the file has been turned into anything. The
 * functions handed to the parser only build inert records from their arguments; nothing in a file is
 * ever executed, imported or looked up by name outside this table.
 *
 * How pickleparser is held to that (and what it cannot do):
 *  - GLOBAL, STACK_GLOBAL and INST resolve through `nameResolver`; EXT1/2/4 (the copyreg extension
 *    registry, globals by number) through `extensionResolver`, which refuses; persistent ids through
 *    `persistentResolver`, which accepts only torch's ('storage', ...) tuples.
 *  - Dicts are Maps, so keys from the file never become object properties.
 *  - The byte reader is ours (PickleStream): every length is checked against what is left, so a
 *    corrupt or hostile length fails at once instead of rewinding the parser or allocating blindly,
 *    and a large legacy file is read in chunks, never whole.
 *  - Records we return are frozen: BUILD on them fails instead of changing them.
 *  - Known limitation: pickleparser decodes LONG1/LONG4 as unsigned, so an integer below -2^31 in a
 *    file's metadata reads as a large positive number. Tensor sizes, strides and offsets are never
 *    negative, and every one is checked against its storage, so tensors are unaffected.
 */
import { Parser } from 'pickleparser';
import { DTYPE_BYTES, type DType } from './dtype.js';
import { FormatError } from './source.js';

/** A global the allow-list refuses; the message names it and says why. */
export class ForbiddenGlobalError extends FormatError {
  override name = 'ForbiddenGlobalError';
  constructor(readonly global: string) {
    super(
      `refused to unpickle the global '${global}': simtrip rebuilds only what torch.save writes for tensors and state dicts ` +
        '(tensors, storages, OrderedDict, plain containers, numbers, torch.device, argparse.Namespace), and rebuilding this one ' +
        'would run code named by the file; save just the weights (torch.save(model.state_dict(), path)) or convert them to .safetensors',
    );
  }
}

/** A storage (one block of elements of one dtype) as a persistent id names it; its bytes live elsewhere. */
export class TorchStorage {
  constructor(
    /** The key its bytes are filed under (zip member data/<key>, or the legacy storage list). */
    readonly key: string,
    readonly dtype: DType,
    /** Elements in the storage. */
    readonly numel: number,
    /** Where it was saved from ("cpu", "cuda:0"); simtrip reads everything to the CPU. */
    readonly location: string,
    /** Old legacy files: a storage that is a window of another one. */
    readonly view?: { readonly root: TorchStorage; readonly offset: number },
  ) {
    Object.freeze(this);
  }
}

/** A tensor as torch saves it: a strided view of a storage. Read its values with TorchFile.tensorBytes. */
export class TorchTensor {
  constructor(
    readonly storage: TorchStorage,
    /** In elements. */
    readonly storageOffset: number,
    readonly shape: readonly number[],
    /** In elements, per axis. */
    readonly stride: readonly number[],
  ) {
    Object.freeze(this);
  }

  get dtype(): DType {
    return this.storage.dtype;
  }
}

export class TorchDevice {
  constructor(readonly text: string) {
    Object.freeze(this);
  }
}

/** An object kept as its attributes only (argparse.Namespace). */
export class PyRecord {
  readonly fields = new Map<string, unknown>();
  constructor(readonly type: string) {}
}

/** The storage classes torch pickles, by the element type they hold. */
const STORAGE_DTYPES: Readonly<Record<string, DType>> = {
  DoubleStorage: 'float64',
  FloatStorage: 'float32',
  HalfStorage: 'float16',
  BFloat16Storage: 'bfloat16',
  LongStorage: 'int64',
  IntStorage: 'int32',
  ShortStorage: 'int16',
  CharStorage: 'int8',
  ByteStorage: 'uint8',
  BoolStorage: 'bool',
};

/** Storage types torch has that simtrip does not read (the file is refused with this reason). */
const UNSUPPORTED_STORAGES: Readonly<Record<string, string>> = {
  ComplexFloatStorage: 'complex64',
  ComplexDoubleStorage: 'complex128',
  QInt8Storage: 'quantized qint8',
  QUInt8Storage: 'quantized quint8',
  QInt32Storage: 'quantized qint32',
  QUInt4x2Storage: 'quantized quint4x2',
  QUInt2x4Storage: 'quantized quint2x4',
  UntypedStorage: 'untyped (raw byte)',
};

class StorageType {
  constructor(
    readonly name: string,
    readonly dtype: DType,
  ) {
    Object.freeze(this);
  }
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function isCountList(value: unknown): value is number[] {
  return Array.isArray(value) && value.every(isCount);
}

function badCall(fn: string, why: string): FormatError {
  return new FormatError(`corrupt pickle: ${fn} ${why}`);
}

function rebuildTensor(fn: string) {
  return (...args: unknown[]): TorchTensor => {
    const [storage, offset, shape, stride] = args;
    if (!(storage instanceof TorchStorage)) throw badCall(fn, 'got no storage');
    if (!isCount(offset) || !isCountList(shape) || !isCountList(stride) || shape.length !== stride.length) {
      throw badCall(fn, `got offset ${String(offset)}, shape ${JSON.stringify(shape)}, stride ${JSON.stringify(stride)}`);
    }
    return new TorchTensor(storage, offset, [...shape], [...stride]);
  };
}

function rebuildParameter(fn: string) {
  return (data: unknown): TorchTensor => {
    if (!(data instanceof TorchTensor)) throw badCall(fn, 'got no tensor');
    return data;
  };
}

/** Protocol 2 pickles bytes as _codecs.encode(text, 'latin1'): one char per byte. */
function latin1Bytes(fn: string) {
  return (text: unknown = '', encoding: unknown = 'latin1'): Uint8Array => {
    if (typeof text !== 'string' || (encoding !== 'latin1' && encoding !== 'latin-1')) {
      throw badCall(fn, `got (${typeof text}, ${JSON.stringify(encoding)}); only latin1 text is read`);
    }
    const out = new Uint8Array(text.length);
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c > 255) throw badCall(fn, 'got a character outside latin1');
      out[i] = c;
    }
    return out;
  };
}

function orderedDict(items?: unknown): Map<unknown, unknown> {
  const map = new Map<unknown, unknown>();
  if (items === undefined) return map;
  if (!Array.isArray(items)) throw badCall('collections.OrderedDict', 'got a non-list argument');
  for (const pair of items) {
    if (!Array.isArray(pair) || pair.length !== 2) throw badCall('collections.OrderedDict', 'got an item that is not a pair');
    map.set(pair[0], pair[1]);
  }
  return map;
}

function sequenceCopy(fn: string) {
  return (items: unknown = []): unknown[] => {
    if (!Array.isArray(items)) throw badCall(fn, 'got a non-sequence argument');
    return [...items];
  };
}

function device(type: unknown, index?: unknown): TorchDevice {
  if (typeof type !== 'string' || (index !== undefined && index !== null && !isCount(index))) {
    throw badCall('torch.device', `got (${JSON.stringify(type)}, ${JSON.stringify(index)})`);
  }
  return new TorchDevice(isCount(index) ? `${type}:${index}` : type);
}

/** argparse.Namespace arrives as NEWOBJ (a construct) then BUILD with its __dict__. */
function namespaceClass(): new () => PyRecord {
  class Namespace extends PyRecord {
    constructor() {
      super('argparse.Namespace');
    }

    __setstate__(state: unknown): void {
      if (!(state instanceof Map)) throw badCall('argparse.Namespace', 'got a state that is not a dict');
      for (const [k, v] of state) {
        if (typeof k !== 'string') throw badCall('argparse.Namespace', 'got a non-string attribute name');
        this.fields.set(k, v);
      }
    }
  }
  Object.freeze(Namespace.prototype);
  return Object.freeze(Namespace);
}

type Global = ((...args: never[]) => unknown) | (new () => unknown) | StorageType;

/** The allow-list: "module.name" -> what the parser gets. Made fresh per file, and frozen. */
function allowedGlobals(): Map<string, Global> {
  const table = new Map<string, Global>([
    ['torch._utils._rebuild_tensor_v2', rebuildTensor('torch._utils._rebuild_tensor_v2')],
    ['torch._utils._rebuild_tensor', rebuildTensor('torch._utils._rebuild_tensor')],
    ['torch._utils._rebuild_parameter', rebuildParameter('torch._utils._rebuild_parameter')],
    ['torch._utils._rebuild_parameter_with_state', rebuildParameter('torch._utils._rebuild_parameter_with_state')],
    ['collections.OrderedDict', orderedDict],
    ['_codecs.encode', latin1Bytes('_codecs.encode')],
    ['torch.Size', sequenceCopy('torch.Size')],
    ['torch.device', device],
    ['argparse.Namespace', namespaceClass()],
  ]);
  for (const builtins of ['builtins', '__builtin__']) {
    table.set(`${builtins}.set`, sequenceCopy(`${builtins}.set`));
    table.set(`${builtins}.frozenset`, sequenceCopy(`${builtins}.frozenset`));
    table.set(`${builtins}.bytearray`, latin1Bytes(`${builtins}.bytearray`));
  }
  for (const [name, dtype] of Object.entries(STORAGE_DTYPES)) {
    table.set(`torch.${name}`, new StorageType(name, dtype));
    table.set(`torch.cuda.${name}`, new StorageType(name, dtype));
  }
  for (const value of table.values()) Object.freeze(value);
  return table;
}

function resolveGlobal(table: Map<string, Global>, module: unknown, name: unknown): Global {
  if (typeof module !== 'string' || typeof name !== 'string') {
    throw new FormatError('corrupt pickle: a global is named by something other than two strings');
  }
  const unsupported = UNSUPPORTED_STORAGES[name];
  if (unsupported && (module === 'torch' || module === 'torch.cuda')) {
    throw new FormatError(`holds ${unsupported} tensors (${module}.${name}), which simtrip does not read`);
  }
  const value = table.get(`${module}.${name}`);
  if (value === undefined) throw new ForbiddenGlobalError(`${module}.${name}`);
  return value;
}

/** Resolves a persistent id (torch's storage references) to a TorchStorage. */
export type PersistentLoad = (pid: unknown) => TorchStorage;

/**
 * The storage a persistent id names: ('storage', StorageType, key, location, numel[, view_metadata]).
 * The zip format has five fields; the legacy format adds view_metadata (null, or (view_key, offset,
 * view_size) in files from before PyTorch 0.4). One TorchStorage per key, shared by every tensor that
 * views it.
 */
export function storageResolver(): PersistentLoad {
  const storages = new Map<string, TorchStorage>();
  return (pid) => {
    if (!Array.isArray(pid) || pid[0] !== 'storage' || (pid.length !== 5 && pid.length !== 6)) {
      throw new FormatError(`corrupt pickle: unknown persistent id ${describePid(pid)}`);
    }
    const [, type, rawKey, location, numel, view] = pid as unknown[];
    const key = typeof rawKey === 'number' ? String(rawKey) : rawKey;
    if (!(type instanceof StorageType) || typeof key !== 'string' || typeof location !== 'string' || !isCount(numel)) {
      throw new FormatError(`corrupt pickle: malformed storage reference ${describePid(pid)}`);
    }
    let root = storages.get(key);
    if (!root) {
      root = new TorchStorage(key, type.dtype, numel, location);
      storages.set(key, root);
    } else if (root.dtype !== type.dtype || root.numel !== numel) {
      throw new FormatError(`corrupt pickle: storage '${key}' is referenced with two different types or sizes`);
    }
    if (view === undefined || view === null) return root;
    return viewStorage(storages, root, view);
  };
}

function viewStorage(storages: Map<string, TorchStorage>, root: TorchStorage, view: unknown): TorchStorage {
  if (!Array.isArray(view) || view.length !== 3 || !isCount(view[1]) || !isCount(view[2])) {
    throw new FormatError('corrupt pickle: malformed storage view');
  }
  const viewKey = String(view[0]);
  const [offset, size] = [view[1] as number, view[2] as number];
  if (offset + size > root.numel) {
    throw new FormatError(`corrupt pickle: storage view '${viewKey}' [${offset}, ${offset + size}) lies outside storage '${root.key}' of ${root.numel}`);
  }
  const existing = storages.get(viewKey);
  if (existing) return existing;
  const storage = new TorchStorage(viewKey, root.dtype, size, root.location, { root, offset });
  storages.set(viewKey, storage);
  return storage;
}

function describePid(pid: unknown): string {
  if (!Array.isArray(pid)) return typeof pid;
  return `(${pid.map((p) => (typeof p === 'string' ? `'${p.slice(0, 40)}'` : typeof p)).join(', ')})`;
}

/** Positional reads of the bytes a pickle lives in (a file, or a zip member in memory). */
export type ReadAt = (position: number, length: number) => Uint8Array;

/** Chunks start small (a legacy file's pickle is followed by its storages) and grow to this. */
const FIRST_CHUNK = 1 << 12;
const MAX_CHUNK = 1 << 20;
const MAX_LINE = 1 << 16;

/**
 * pickleparser's reader interface over a byte range, read in chunks. Every length is checked against
 * the bytes left before anything is read or allocated.
 */
export class PickleStream {
  private chunk: Uint8Array = new Uint8Array(0);
  private chunkStart = 0;
  private chunkSize = FIRST_CHUNK;
  private pos: number;
  private readonly utf8 = new TextDecoder('utf-8');
  private readonly ascii = new TextDecoder('latin1');

  constructor(
    private readonly readAt: ReadAt,
    start: number,
    private readonly end: number,
  ) {
    this.pos = start;
  }

  get position(): number {
    return this.pos;
  }

  private take(length: number): Uint8Array {
    if (!Number.isSafeInteger(length) || length < 0) throw new FormatError(`corrupt pickle: length ${length} at byte ${this.pos}`);
    if (this.pos + length > this.end) {
      throw new FormatError(`truncated pickle: needs ${length} bytes at byte ${this.pos} but the data ends at ${this.end}`);
    }
    const from = this.pos - this.chunkStart;
    if (from < 0 || from + length > this.chunk.length) {
      if (length > this.chunkSize) {
        const direct = this.readAt(this.pos, length);
        this.pos += length;
        return direct;
      }
      this.chunkStart = this.pos;
      this.chunk = this.readAt(this.pos, Math.min(this.chunkSize, this.end - this.pos));
      this.chunkSize = Math.min(2 * this.chunkSize, MAX_CHUNK);
    }
    const at = this.pos - this.chunkStart;
    this.pos += length;
    return this.chunk.subarray(at, at + length);
  }

  private view(length: number): DataView {
    const bytes = this.take(length);
    return new DataView(bytes.buffer, bytes.byteOffset, length);
  }

  byte(): number {
    return this.take(1)[0]!;
  }

  bytes(length: number): Uint8Array {
    return this.take(length).slice();
  }

  uint16(): number {
    return this.view(2).getUint16(0, true);
  }

  int32(): number {
    return this.view(4).getInt32(0, true);
  }

  uint32(): number {
    return this.view(4).getUint32(0, true);
  }

  uint64(): number {
    const value = this.view(8).getBigUint64(0, true);
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new FormatError(`corrupt pickle: 64-bit length ${value} at byte ${this.pos - 8}`);
    return Number(value);
  }

  float64(): number {
    return this.view(8).getFloat64(0, false);
  }

  skip(offset: number): void {
    this.take(offset);
  }

  string(size: number, encoding: 'ascii' | 'utf-8'): string {
    const bytes = this.take(size);
    return (encoding === 'utf-8' ? this.utf8 : this.ascii).decode(bytes);
  }

  line(): string {
    const out: number[] = [];
    for (;;) {
      const c = this.byte();
      if (c === 0x0a) return String.fromCharCode(...out);
      if (out.length >= MAX_LINE) throw new FormatError(`corrupt pickle: text line longer than ${MAX_LINE} bytes at byte ${this.pos}`);
      out.push(c);
    }
  }

  hasNext(): boolean {
    return this.pos < this.end;
  }
}

/**
 * Unpickles one pickle from `stream` (which is left just after its STOP), rebuilding only the
 * allow-listed globals. Every failure is a FormatError: ForbiddenGlobalError for a refused global,
 * "corrupt/truncated pickle" for anything malformed.
 */
export function unpickleRestricted(stream: PickleStream, persistentLoad: PersistentLoad = refusePersistent): unknown {
  const table = allowedGlobals();
  const parser = new Parser({
    nameResolver: { resolve: (module, name) => resolveGlobal(table, module, name) as never },
    persistentResolver: { resolve: (pid) => persistentLoad(pid) },
    extensionResolver: {
      resolve: (code) => {
        throw new ForbiddenGlobalError(`copyreg extension code ${code}`);
      },
    },
    unpicklingTypeOfDictionary: 'Map',
    unpicklingTypeOfSet: 'array',
  });
  let value: unknown;
  try {
    value = parser.read(stream);
  } catch (err) {
    if (err instanceof FormatError) throw err;
    if (!stream.hasNext()) throw new FormatError(`truncated pickle: the data ends at byte ${stream.position}, before the pickle's STOP`);
    throw new FormatError(`corrupt pickle near byte ${stream.position} (${(err as Error).message})`);
  }
  if (value === undefined) throw new FormatError(`corrupt pickle: nothing on the stack at STOP (byte ${stream.position})`);
  return value;
}

function refusePersistent(): never {
  throw new FormatError('corrupt pickle: a persistent id where none is expected');
}

/** Bytes per element of a storage's dtype. */
export function elementSize(storage: TorchStorage): number {
  return DTYPE_BYTES[storage.dtype];
}
