/**
 * A read-only zip reader, enough for .npz archives: finds the end-of-central-directory record (and
 * its ZIP64 variant), lists the central directory, and extracts single members on demand, so that
 * members nobody asks for are never read or inflated. Stored (0) and deflate (8) members only.
 * Every problem is reported as a FormatError; callers attach the path.
 */
import { constants as zlibConstants, inflateRawSync } from 'node:zlib';
import { crc32 } from './crc32.js';
import { FormatError, type RangeReader } from './source.js';

export interface ZipEntry {
  readonly name: string;
  readonly method: number;
  readonly flags: number;
  readonly crc32: number;
  readonly compressedSize: number;
  readonly uncompressedSize: number;
  readonly localHeaderOffset: number;
}

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;
const SIG_ZIP64_EOCD = 0x06064b50;
const EOCD_SIZE = 22;
const ZIP64_LOCATOR_SIZE = 20;
const ZIP64_EOCD_SIZE = 56;
const LOCAL_HEADER_SIZE = 30;
const CENTRAL_HEADER_SIZE = 46;
const ZIP64_EXTRA_ID = 0x0001;
const U16_MAX = 0xffff;
const U32_MAX = 0xffffffff;
const FLAG_ENCRYPTED = 0x1;
const FLAG_UTF8 = 0x800;
const METHOD_STORED = 0;
const METHOD_DEFLATE = 8;

/** Little-endian field access over a byte range, with u64 checked to fit a JS number. */
class Fields {
  private readonly view: DataView;

  constructor(readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  u16(at: number): number {
    return this.view.getUint16(at, true);
  }

  u32(at: number): number {
    return this.view.getUint32(at, true);
  }

  u64(at: number): number {
    const value = this.view.getBigUint64(at, true);
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new FormatError(`64-bit zip field ${value} is too large`);
    return Number(value);
  }
}

interface Directory {
  readonly entryCount: number;
  readonly size: number;
  readonly offset: number;
  /** Where the directory must end: the first end record. */
  readonly limit: number;
}

function findEocd(tail: Uint8Array): number {
  const fields = new Fields(tail);
  for (let at = tail.length - EOCD_SIZE; at >= 0; at--) {
    // The comment length check rejects a signature that merely occurs inside the archive comment.
    if (fields.u32(at) === SIG_EOCD && at + EOCD_SIZE + fields.u16(at + 20) <= tail.length) return at;
  }
  return -1;
}

function notFoundReason(source: RangeReader): string {
  const size = source.stamp.size;
  const startsLikeZip = size >= 4 && new Fields(source.read(0, 4)).u32(0) === SIG_LOCAL;
  return startsLikeZip
    ? 'truncated zip archive: end of central directory record not found'
    : 'not a zip archive';
}

function readZip64Directory(source: RangeReader, locator: Fields, locatorAt: number): Directory {
  const recordAt = locator.u64(8);
  if (recordAt + ZIP64_EOCD_SIZE > locatorAt) throw new FormatError('ZIP64 end record offset is out of range');
  const record = new Fields(source.read(recordAt, ZIP64_EOCD_SIZE));
  if (record.u32(0) !== SIG_ZIP64_EOCD) throw new FormatError('ZIP64 end of central directory record not found');
  if (record.u32(16) !== 0 || record.u32(20) !== 0) throw new FormatError('multi-disk zip archives are not supported');
  return { entryCount: record.u64(32), size: record.u64(40), offset: record.u64(48), limit: recordAt };
}

/** The end of the file, where the end record is: first without an archive comment (one small read), else the largest tail a comment allows. */
function readTail(source: RangeReader): { tail: Uint8Array; tailStart: number; at: number } {
  const size = source.stamp.size;
  for (const wanted of [EOCD_SIZE + ZIP64_LOCATOR_SIZE, EOCD_SIZE + U16_MAX + ZIP64_LOCATOR_SIZE]) {
    const tailLength = Math.min(size, wanted);
    const tailStart = size - tailLength;
    const tail = source.read(tailStart, tailLength);
    const at = findEocd(tail);
    if (at >= 0) return { tail, tailStart, at };
    if (tailLength === size) break;
  }
  throw new FormatError(notFoundReason(source));
}

function readDirectoryLocation(source: RangeReader): Directory {
  const { tail, tailStart, at } = readTail(source);
  const eocd = new Fields(tail.subarray(at, at + EOCD_SIZE));
  // The tail is long enough that a ZIP64 locator, when there is one, lies inside it.
  if (at >= ZIP64_LOCATOR_SIZE) {
    const locator = new Fields(tail.subarray(at - ZIP64_LOCATOR_SIZE, at));
    if (locator.u32(0) === SIG_ZIP64_LOCATOR) {
      return readZip64Directory(source, locator, tailStart + at - ZIP64_LOCATOR_SIZE);
    }
  }
  if (eocd.u16(4) !== 0 || eocd.u16(6) !== 0) throw new FormatError('multi-disk zip archives are not supported');
  return { entryCount: eocd.u16(10), size: eocd.u32(12), offset: eocd.u32(16), limit: tailStart + at };
}

/** Replaces the 32-bit fields saturated at 0xffffffff by their values from the ZIP64 extra field. */
function applyZip64Extra(
  extra: Fields,
  sizes: { uncompressedSize: number; compressedSize: number; localHeaderOffset: number },
): void {
  for (let at = 0; at + 4 <= extra.bytes.length; ) {
    const id = extra.u16(at);
    const length = extra.u16(at + 2);
    if (id === ZIP64_EXTRA_ID) {
      let field = at + 4;
      const end = field + length;
      for (const key of ['uncompressedSize', 'compressedSize', 'localHeaderOffset'] as const) {
        if (sizes[key] !== U32_MAX) continue;
        if (field + 8 > end || end > extra.bytes.length) throw new FormatError('ZIP64 extra field is too short');
        sizes[key] = extra.u64(field);
        field += 8;
      }
      return;
    }
    at += 4 + length;
  }
}

function decodeName(bytes: Uint8Array, flags: number): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString(
    flags & FLAG_UTF8 ? 'utf8' : 'latin1',
  );
}

function parseCentralDirectory(cd: Fields, entryCount: number): ZipEntry[] {
  const entries: ZipEntry[] = [];
  let at = 0;
  for (let i = 0; i < entryCount; i++) {
    if (at + CENTRAL_HEADER_SIZE > cd.bytes.length || cd.u32(at) !== SIG_CENTRAL) {
      throw new FormatError(`corrupt central directory (entry ${i} of ${entryCount})`);
    }
    const flags = cd.u16(at + 8);
    const nameLength = cd.u16(at + 28);
    const extraLength = cd.u16(at + 30);
    const nameStart = at + CENTRAL_HEADER_SIZE;
    const extraStart = nameStart + nameLength;
    const next = extraStart + extraLength + cd.u16(at + 32);
    if (next > cd.bytes.length) throw new FormatError(`corrupt central directory (entry ${i} overruns it)`);
    const sizes = { compressedSize: cd.u32(at + 20), uncompressedSize: cd.u32(at + 24), localHeaderOffset: cd.u32(at + 42) };
    applyZip64Extra(new Fields(cd.bytes.subarray(extraStart, extraStart + extraLength)), sizes);
    entries.push({
      name: decodeName(cd.bytes.subarray(nameStart, extraStart), flags),
      method: cd.u16(at + 10),
      flags,
      crc32: cd.u32(at + 16),
      ...sizes,
    });
    at = next;
  }
  return entries;
}

/** All entries of the archive's central directory, in directory order. */
export function readZipDirectory(source: RangeReader): ZipEntry[] {
  const dir = readDirectoryLocation(source);
  if (dir.offset + dir.size > dir.limit) {
    throw new FormatError('central directory lies outside the archive (truncated or corrupt)');
  }
  return parseCentralDirectory(new Fields(source.read(dir.offset, dir.size)), dir.entryCount);
}

function inflate(compressed: Uint8Array, expectedSize: number): Uint8Array {
  try {
    // The bound stops a corrupt or hostile member from inflating far beyond its declared size.
    return inflateRawSync(compressed, { maxOutputLength: Math.max(expectedSize, 1) });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ERR_BUFFER_TOO_LARGE') throw new FormatError(`inflates to more than its declared ${expectedSize} bytes`);
    throw new FormatError(`corrupt deflate data (${(err as Error).message})`);
  }
}

function checkReadable(entry: ZipEntry): void {
  if (entry.flags & FLAG_ENCRYPTED) throw new FormatError('encrypted members are not supported');
  if (entry.method !== METHOD_STORED && entry.method !== METHOD_DEFLATE) {
    throw new FormatError(`unsupported compression method ${entry.method} (only stored and deflate)`);
  }
}

function memberDataStart(source: RangeReader, entry: ZipEntry): number {
  const local = new Fields(source.read(entry.localHeaderOffset, LOCAL_HEADER_SIZE));
  if (local.u32(0) !== SIG_LOCAL) throw new FormatError('local file header not found (corrupt archive)');
  return entry.localHeaderOffset + LOCAL_HEADER_SIZE + local.u16(26) + local.u16(28);
}

/**
 * About the first `length` uncompressed bytes of a member (fewer when the member is shorter; possibly
 * a few more for deflate), reading and inflating only what they need: for headers of large members.
 * Not checked against the CRC, which covers the whole member.
 */
export function readZipMemberPrefix(source: RangeReader, entry: ZipEntry, length: number): Uint8Array {
  checkReadable(entry);
  const start = memberDataStart(source, entry);
  if (entry.method === METHOD_STORED) return source.read(start, Math.min(length, entry.compressedSize));
  // Deflate expands at most ~1032:1, so `length` compressed bytes hold at least `length` output bytes
  // unless the stream ends first; inflate what is there without requiring the stream's end.
  const compressed = source.read(start, Math.min(length, entry.compressedSize));
  try {
    return inflateRawSync(compressed, { finishFlush: zlibConstants.Z_SYNC_FLUSH });
  } catch (err) {
    throw new FormatError(`corrupt deflate data (${(err as Error).message})`);
  }
}

/** The member's uncompressed bytes, checked against its declared size and CRC-32. */
export function readZipMember(source: RangeReader, entry: ZipEntry): Uint8Array {
  checkReadable(entry);
  const dataStart = memberDataStart(source, entry);
  const compressed = source.read(dataStart, entry.compressedSize);
  const data = entry.method === METHOD_STORED ? compressed : inflate(compressed, entry.uncompressedSize);
  if (data.length !== entry.uncompressedSize) {
    throw new FormatError(`${data.length} bytes where the directory declares ${entry.uncompressedSize}`);
  }
  if (crc32(data) !== entry.crc32) throw new FormatError('CRC-32 mismatch (corrupt data)');
  return data;
}
