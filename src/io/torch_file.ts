/**
 * Files written by torch.save (.pth, .pth.tar, .pt, .ckpt, .bin), in both formats torch writes:
 *
 *   zip     (torch >= 1.6)  <archive>/data.pkl: the object, storages as persistent ids;
 *                           <archive>/data/<key>: each storage's bytes (stored, not deflated);
 *                           <archive>/byteorder: "little" or "big" (torch >= 2.1; little when absent)
 *   legacy  (torch < 1.6, or _use_new_zipfile_serialization=False): five pickles back to back --
 *                           magic number, protocol version, sys_info, the object, the storage keys --
 *                           then each storage as a little-endian int64 element count and its bytes
 *
 * Opening parses the pickles (through the restricted unpickler, src/io/torch_pickle.ts) and locates
 * every storage without reading any: tensor data is read when a tensor is asked for, one storage at
 * a time, so a multi-GB checkpoint is never held in one buffer.
 */
import { byteSwapInPlace, shapeSize } from './dtype.js';
import { FormatError, openRangeReader, withInputFile, type RangeReader } from './source.js';
import { elementSize, PickleStream, storageResolver, TorchStorage, TorchTensor, unpickleRestricted } from './torch_pickle.js';
import { readZipDirectory, readZipMember, type ZipEntry } from './zip.js';

export type TorchFormat = 'zip' | 'legacy';

/** torch's legacy magic number 0x1950a86a20f9469cfc6c, as the 10 little-endian bytes of its LONG1. */
const LEGACY_MAGIC = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
const LEGACY_PROTOCOL_VERSION = 1001;
const PROTO = 0x80;
const FRAME = 0x95;
const LONG1 = 0x8a;
const STOP = 0x2e;

/** Reads a storage's whole byte block (little-endian after any byte swap the format needs). */
type StorageBytes = (storage: TorchStorage) => Uint8Array;

export class TorchFile {
  private cached?: { storage: TorchStorage; bytes: Uint8Array };

  /** @internal Use openTorchFile. */
  constructor(
    readonly path: string,
    readonly format: TorchFormat,
    /** The unpickled object: Maps, arrays, numbers, strings, TorchTensors, PyRecords. */
    readonly root: unknown,
    private readonly storageBytes: StorageBytes,
  ) {}

  /**
   * The tensor's elements in row-major order as little-endian bytes (float16/bfloat16 as bit
   * patterns, bool as 0/1 bytes): exactly what torch holds, bit for bit. Views, storage offsets and
   * non-contiguous strides are resolved here; the last storage read is kept, so consecutive views of
   * one storage read it once.
   */
  tensorBytes(tensor: TorchTensor): Uint8Array {
    return withInputFile(this.path, () => {
      checkExtent(tensor);
      if (shapeSize(tensor.shape) === 0) return new Uint8Array(0);
      return gather(this.storage(tensor.storage), tensor);
    });
  }

  private storage(storage: TorchStorage): Uint8Array {
    if (this.cached?.storage !== storage) this.cached = { storage, bytes: this.storageBytes(storage) };
    return this.cached.bytes;
  }
}

/** The last element a tensor reaches must lie inside its storage; torch never saves negative strides. */
function checkExtent(t: TorchTensor): void {
  if (shapeSize(t.shape) === 0) return;
  const last = t.shape.reduce((at, dim, i) => at + (dim - 1) * t.stride[i]!, t.storageOffset);
  if (last >= t.storage.numel) {
    throw new FormatError(
      `tensor [${t.shape.join(', ')}] with stride [${t.stride.join(', ')}] at offset ${t.storageOffset} reaches element ${last} of storage '${t.storage.key}', which has ${t.storage.numel}`,
    );
  }
}

function isContiguous(t: TorchTensor): boolean {
  let expected = 1;
  for (let i = t.shape.length - 1; i >= 0; i--) {
    if (t.shape[i] !== 1 && t.stride[i] !== expected) return false;
    expected *= t.shape[i]!;
  }
  return true;
}

/** Copies the tensor's elements out of its storage's bytes into row-major order. */
function gather(storage: Uint8Array, t: TorchTensor): Uint8Array {
  const size = elementSize(t.storage);
  const count = shapeSize(t.shape);
  const start = t.storageOffset * size;
  if (isContiguous(t)) return storage.slice(start, start + count * size);
  const out = new Uint8Array(count * size);
  const rank = t.shape.length;
  const index = new Array<number>(rank).fill(0);
  let from = t.storageOffset;
  for (let to = 0; to < out.length; to += size) {
    out.set(storage.subarray(from * size, from * size + size), to);
    for (let axis = rank - 1; axis >= 0; axis--) {
      from += t.stride[axis]!;
      if (++index[axis]! < t.shape[axis]!) break;
      from -= t.stride[axis]! * t.shape[axis]!;
      index[axis] = 0;
    }
  }
  return out;
}

function startsWith(bytes: Uint8Array, text: string, at = 0): boolean {
  return bytes.length >= at + text.length && [...text].every((c, i) => bytes[at + i] === c.charCodeAt(0));
}

function detectFormat(head: Uint8Array): TorchFormat {
  if (startsWith(head, 'PK\x03\x04') || startsWith(head, 'PK\x05\x06')) return 'zip';
  if (startsWith(head, 'ustar', 257)) {
    throw new FormatError('a tar-format checkpoint from PyTorch before 0.4, which simtrip does not read; load and re-save it with a newer torch');
  }
  if (head[0] === PROTO) return 'legacy';
  if (startsWith(head, '\x93NUMPY')) throw new FormatError('a NumPy .npy file, not a PyTorch checkpoint');
  if (head.length >= 9 && head[8] === 0x7b) throw new FormatError('looks like a .safetensors file; give it the .safetensors extension');
  throw new FormatError('not a PyTorch checkpoint (neither the zip format torch >= 1.6 writes nor the legacy pickle format)');
}

/**
 * Opens a torch.save file: parses its pickles and locates its storages (no tensor data is read).
 * Errors are InputFileErrors naming the path: a refused global (ForbiddenGlobalError's reason), a
 * truncated or corrupt file, a format simtrip does not read.
 */
export async function openTorchFile(path: string, opts: { source?: RangeReader } = {}): Promise<TorchFile> {
  const source = opts.source ?? openRangeReader(path);
  return withInputFile(path, () => {
    const head = source.read(0, Math.min(source.stamp.size, 512));
    if (head.length === 0) throw new FormatError('empty file');
    return detectFormat(head) === 'zip' ? openZip(path, source) : openLegacy(path, source);
  });
}

// ---------------------------------------------------------------------------------------------------
// Zip format.

function archiveRoot(entries: readonly ZipEntry[]): string {
  const pickles = entries.filter((e) => e.name === 'data.pkl' || e.name.endsWith('/data.pkl'));
  if (pickles.length === 0) {
    const names = entries.map((e) => e.name);
    if (names.some((n) => /(^|\/)constants\.pkl$/.test(n) || /(^|\/)code\//.test(n))) {
      throw new FormatError('a TorchScript archive (torch.jit.save), not a torch.save checkpoint; save the state_dict with torch.save');
    }
    throw new FormatError('a zip archive without data.pkl, so not a torch.save checkpoint');
  }
  // The archive's own folder is the shallowest data.pkl (nested ones belong to other records).
  const best = pickles.reduce((a, b) => (a.name.split('/').length <= b.name.split('/').length ? a : b));
  return best.name.slice(0, best.name.length - 'data.pkl'.length);
}

function readByteOrder(source: RangeReader, members: Map<string, ZipEntry>, root: string): 'little' | 'big' {
  const entry = members.get(`${root}byteorder`);
  if (!entry) return 'little';
  const text = Buffer.from(readZipMember(source, entry)).toString('latin1').trim();
  if (text !== 'little' && text !== 'big') throw new FormatError(`unknown byteorder record '${text.slice(0, 20)}'`);
  return text;
}

function openZip(path: string, source: RangeReader): TorchFile {
  const entries = readZipDirectory(source);
  const members = new Map(entries.map((e) => [e.name, e]));
  const root = archiveRoot(entries);
  const byteOrder = readByteOrder(source, members, root);
  const pickle = readZipMember(source, members.get(`${root}data.pkl`)!);
  const stream = new PickleStream((at, n) => pickle.subarray(at, at + n), 0, pickle.length);
  const object = unpickleRestricted(stream, storageResolver());
  const storageBytes = (storage: TorchStorage): Uint8Array => {
    const name = `${root}data/${storage.key}`;
    const entry = members.get(name);
    if (!entry) throw new FormatError(`storage '${storage.key}' is missing (no member ${name})`);
    const expected = storage.numel * elementSize(storage);
    if (entry.uncompressedSize !== expected) {
      throw new FormatError(`member ${name} has ${entry.uncompressedSize} bytes, but its ${storage.numel} ${storage.dtype} elements need ${expected}`);
    }
    const bytes = readZipMember(source, entry);
    // torch >= 2.1 on a big-endian machine stores native order and says so in byteorder.
    if (byteOrder === 'big' && elementSize(storage) > 1) byteSwapInPlace(bytes, elementSize(storage));
    return bytes;
  };
  return new TorchFile(path, 'zip', object, storageBytes);
}

// ---------------------------------------------------------------------------------------------------
// Legacy format.

/**
 * The first pickle holds the magic number as a 10-byte LONG1, which pickleparser cannot decode (it
 * reads at most 8 bytes into a number), so it is matched byte for byte: PROTO n, an optional
 * FRAME, LONG1 10 <magic>, STOP. Returns where the next pickle starts.
 */
function readMagic(source: RangeReader): number {
  const head = source.read(0, Math.min(source.stamp.size, 32));
  let at = 0;
  if (head[at] === PROTO) at += 2;
  if (head[at] === FRAME) at += 9;
  const ok = head[at] === LONG1 && head[at + 1] === LEGACY_MAGIC.length && LEGACY_MAGIC.every((b, i) => head[at + 2 + i] === b);
  if (!ok) throw new FormatError('not a PyTorch checkpoint (a pickle without torch\'s magic number); plain pickles are not read');
  at += 2 + LEGACY_MAGIC.length;
  if (head[at] !== STOP) throw new FormatError('corrupt legacy header (magic number pickle)');
  return at + 1;
}

function checkSysInfo(info: unknown): void {
  if (!(info instanceof Map)) throw new FormatError('corrupt legacy header (sys_info is not a dict)');
  if (info.get('little_endian') === false) {
    throw new FormatError(
      'saved on a big-endian machine (legacy format), which simtrip does not read: depending on the torch version that wrote it, its storages may or may not be byte-swapped; re-save it with torch >= 1.6 (zip format)',
    );
  }
}

interface LegacyStorage {
  /** Byte offset of the storage's data (after its element count). */
  readonly offset: number;
}

/**
 * Walks the storage blocks after the pickles: each is an int64 element count (checked against the
 * pickle's) and the data. Only the 8-byte counts are read.
 */
function locateStorages(source: RangeReader, keys: readonly string[], storages: Map<string, TorchStorage>, start: number): Map<string, LegacyStorage> {
  const located = new Map<string, LegacyStorage>();
  let at = start;
  for (const key of keys) {
    const storage = storages.get(key);
    if (!storage) throw new FormatError(`storage list names '${key}', which no tensor uses`);
    const count = new DataView(source.read(at, 8).buffer).getBigInt64(0, true);
    if (count !== BigInt(storage.numel)) {
      throw new FormatError(`storage '${key}' holds ${count} elements in the file but ${storage.numel} in the pickle`);
    }
    located.set(key, { offset: at + 8 });
    at += 8 + storage.numel * elementSize(storage);
    if (at > source.stamp.size) {
      throw new FormatError(`truncated: storage '${key}' needs bytes up to ${at} but the file has ${source.stamp.size}`);
    }
  }
  return located;
}

function openLegacy(path: string, source: RangeReader): TorchFile {
  const size = source.stamp.size;
  const stream = new PickleStream((at, n) => source.read(at, n), readMagic(source), size);
  const protocol = unpickleRestricted(stream);
  if (protocol !== LEGACY_PROTOCOL_VERSION) throw new FormatError(`unsupported legacy protocol version ${String(protocol)}`);
  checkSysInfo(unpickleRestricted(stream));
  const seen = new Map<string, TorchStorage>();
  const resolve = storageResolver();
  const object = unpickleRestricted(stream, (pid) => {
    const storage = resolve(pid);
    const root = storage.view?.root ?? storage;
    seen.set(root.key, root);
    return storage;
  });
  const keys = unpickleRestricted(stream);
  if (!Array.isArray(keys) || !keys.every((k) => typeof k === 'string')) throw new FormatError('corrupt legacy storage list');
  const located = locateStorages(source, keys as string[], seen, stream.position);
  const storageBytes = (storage: TorchStorage): Uint8Array => {
    const root = storage.view?.root ?? storage;
    const where = located.get(root.key);
    if (!where) throw new FormatError(`storage '${root.key}' is not in the file's storage list`);
    const first = where.offset + (storage.view?.offset ?? 0) * elementSize(storage);
    return source.read(first, storage.numel * elementSize(storage));
  };
  return new TorchFile(path, 'legacy', object, storageBytes);
}
