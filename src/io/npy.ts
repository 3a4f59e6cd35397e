/**
 * NumPy .npy arrays: magic "\x93NUMPY", a version (1.0 with a u16 header length, 2.0/3.0 with u32),
 * then a Python dict literal {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), } padded with
 * spaces and a newline, then the raw data.
 */
import { writeFileAtomic } from './atomic.js';
import { byteSwapInPlace, DTYPE_BYTES, shapeSize, toFloat32, viewAs, type DType, type TypedArray } from './dtype.js';
import { float32ArrayToFloat16 } from './float16.js';
import { parsePythonLiteral, type PyValue } from './pyliteral.js';
import { FormatError, openRangeReader, withInputFile } from './source.js';

export interface NpyArray {
  readonly dtype: DType;
  /** C-order shape ([] for a 0-d array). */
  readonly shape: readonly number[];
  /** C-order values; float16 as bit patterns, int64 as BigInt64Array, bool as 0/1 bytes. */
  readonly data: TypedArray;
  /** Values as float32; for float32 arrays this is `data` itself. */
  toFloat32(): Float32Array;
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

/** (kind, bytes) of the numpy type string to our dtype: 'f4' is float32, 'b1' is bool, ... */
const DESCR_TYPES: Readonly<Record<string, DType>> = {
  f2: 'float16',
  f4: 'float32',
  f8: 'float64',
  i1: 'int8',
  i2: 'int16',
  i4: 'int32',
  i8: 'int64',
  u1: 'uint8',
  b1: 'bool',
};

interface Descr {
  readonly dtype: DType;
  readonly bigEndian: boolean;
}

function parseDescr(value: PyValue | undefined): Descr {
  if (typeof value !== 'string') {
    throw new FormatError(`structured dtype ${JSON.stringify(value)} is not supported`);
  }
  const match = /^([<>|=]?)([a-zA-Z]\d+)$/.exec(value);
  const dtype = match ? DESCR_TYPES[match[2]!] : undefined;
  if (!match || !dtype) {
    const hint = value.includes('O') ? ' (pickled Python objects are not supported)' : '';
    throw new FormatError(`unsupported dtype '${value}'${hint}`);
  }
  return { dtype, bigEndian: match[1] === '>' && DTYPE_BYTES[dtype] > 1 };
}

function parseShape(value: PyValue | undefined): number[] {
  if (!Array.isArray(value) || !value.every((d) => typeof d === 'number' && Number.isSafeInteger(d) && d >= 0)) {
    throw new FormatError(`shape ${JSON.stringify(value)} is not a tuple of sizes`);
  }
  return value as number[];
}

interface Header {
  readonly descr: Descr;
  readonly fortranOrder: boolean;
  readonly shape: number[];
  readonly dataStart: number;
}

function readPreamble(bytes: Uint8Array): { headerStart: number; headerLength: number; utf8: boolean } {
  if (bytes.length < 10 || MAGIC.some((b, i) => bytes[i] !== b)) {
    throw new FormatError('not a .npy file (missing \\x93NUMPY magic)');
  }
  const major = bytes[6]!;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (major === 1) return { headerStart: 10, headerLength: view.getUint16(8, true), utf8: false };
  if (major === 2 || major === 3) {
    if (bytes.length < 12) throw new FormatError('truncated header');
    return { headerStart: 12, headerLength: view.getUint32(8, true), utf8: major === 3 };
  }
  throw new FormatError(`unsupported .npy version ${major}.${bytes[7]}`);
}

function parseHeader(bytes: Uint8Array): Header {
  const { headerStart, headerLength, utf8 } = readPreamble(bytes);
  const dataStart = headerStart + headerLength;
  if (dataStart > bytes.length) {
    throw new FormatError(`truncated: header needs ${dataStart} bytes but there are ${bytes.length}`);
  }
  const text = Buffer.from(bytes.buffer, bytes.byteOffset + headerStart, headerLength).toString(
    utf8 ? 'utf8' : 'latin1',
  );
  const dict = parsePythonLiteral(text);
  if (!(dict instanceof Map)) throw new FormatError('header is not a Python dict');
  const fortranOrder = dict.get('fortran_order');
  if (typeof fortranOrder !== 'boolean') throw new FormatError("header lacks a boolean 'fortran_order'");
  return {
    descr: parseDescr(dict.get('descr')),
    fortranOrder,
    shape: parseShape(dict.get('shape')),
    dataStart,
  };
}

/** Reorders column-major elements to row-major (reverse-axis odometer over the Fortran strides). */
function fortranToC(src: Uint8Array, shape: readonly number[], elementSize: number): Uint8Array {
  if (shape.length < 2) return src;
  const out = new Uint8Array(src.length);
  const strides: number[] = [];
  shape.reduce((stride, dim) => (strides.push(stride), stride * dim), 1);
  const index = new Array<number>(shape.length).fill(0);
  let from = 0;
  for (let to = 0; to < out.length; to += elementSize) {
    for (let k = 0; k < elementSize; k++) out[to + k] = src[from * elementSize + k]!;
    for (let axis = shape.length - 1; axis >= 0; axis--) {
      from += strides[axis]!;
      if (++index[axis]! < shape[axis]!) break;
      from -= strides[axis]! * shape[axis]!;
      index[axis] = 0;
    }
  }
  return out;
}

function makeArray(dtype: DType, shape: readonly number[], bytes: Uint8Array): NpyArray {
  const data = viewAs(dtype, bytes);
  return {
    dtype,
    shape,
    data,
    toFloat32: () => (data instanceof Float32Array ? data : toFloat32(dtype, bytes)),
  };
}

function decode(bytes: Uint8Array): NpyArray {
  const { descr, fortranOrder, shape, dataStart } = parseHeader(bytes);
  const elementSize = DTYPE_BYTES[descr.dtype];
  const byteLength = shapeSize(shape) * elementSize;
  if (dataStart + byteLength > bytes.length) {
    throw new FormatError(
      `truncated: ${descr.dtype} [${shape.join(', ')}] needs ${byteLength} data bytes but there are ${bytes.length - dataStart}`,
    );
  }
  let data = bytes.subarray(dataStart, dataStart + byteLength);
  if (descr.bigEndian) {
    data = data.slice();
    byteSwapInPlace(data, elementSize);
  }
  if (fortranOrder) data = fortranToC(data, shape, elementSize);
  return makeArray(descr.dtype, shape, data);
}

/** What a .npy header declares, without the data. */
export interface NpyInfo {
  readonly dtype: DType;
  readonly shape: readonly number[];
  /** Bytes of data the header announces (elements x element size). */
  readonly dataBytes: number;
}

/**
 * Parses only the header of a .npy image. `bytes` may be a prefix of the file; returns null when the
 * prefix is too short to hold the whole header, so a caller can read more and retry.
 */
export function decodeNpyInfo(bytes: Uint8Array, path: string, member?: string): NpyInfo | null {
  return withInputFile(
    path,
    () => {
      if (MAGIC.some((b, i) => i < bytes.length && bytes[i] !== b)) {
        throw new FormatError('not a .npy file (missing \\x93NUMPY magic)');
      }
      if (bytes.length < 12) return null;
      const { headerStart, headerLength } = readPreamble(bytes);
      if (headerStart + headerLength > bytes.length) return null;
      const { descr, shape } = parseHeader(bytes);
      return { dtype: descr.dtype, shape, dataBytes: shapeSize(shape) * DTYPE_BYTES[descr.dtype] };
    },
    member === undefined ? '' : `member '${member}'`,
  );
}

/**
 * Decodes an in-memory .npy image. The result may share memory with `bytes`. Errors are
 * InputFileErrors naming `path` (and `member`, for arrays inside an archive).
 */
export function decodeNpy(bytes: Uint8Array, path: string, member?: string): NpyArray {
  return withInputFile(path, () => decode(bytes), member === undefined ? '' : `member '${member}'`);
}

export async function readNpy(path: string): Promise<NpyArray> {
  const source = openRangeReader(path);
  return decodeNpy(source.read(0, source.stamp.size), path);
}

/** Element types the writer produces: float32, or float16 to halve feature files. */
export type NpyWriteDtype = 'float32' | 'float16';

/** Smallest magnitude float16 rounds to Inf (the tie between 65504 and 2^16 goes to the even 2^16). */
const HALF_OVERFLOW = 65520;

const WRITE_DESCR: Readonly<Record<NpyWriteDtype, string>> = { float32: '<f4', float16: '<f2' };

function headerText(shape: readonly number[], dtype: NpyWriteDtype): string {
  const dims = shape.length === 1 ? `${shape[0]},` : shape.join(', ');
  return `{'descr': '${WRITE_DESCR[dtype]}', 'fortran_order': False, 'shape': (${dims}), }`;
}

/**
 * float16 bit patterns of `data`, rounded to nearest even. A finite value beyond the half range would
 * be stored as Inf: refused, so a feature file never silently holds infinities.
 */
function toHalfData(data: Float32Array): Uint16Array {
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    if (Number.isFinite(v) && Math.abs(v) >= HALF_OVERFLOW) {
      throw new RangeError(`value ${v} at index ${i} is beyond the float16 range (largest 65504); write float32 instead`);
    }
  }
  return float32ArrayToFloat16(data);
}

/**
 * A version 1.0 little-endian C-order .npy of float32 values stored as float32 ('<f4') or float16
 * ('<f2'), header padded so the data is 64-byte aligned.
 */
export function encodeNpy(data: Float32Array, shape: readonly number[], dtype: NpyWriteDtype = 'float32'): Buffer[] {
  if (!shape.every((d) => Number.isSafeInteger(d) && d >= 0) || shapeSize(shape) !== data.length) {
    throw new RangeError(`shape [${shape.join(', ')}] does not hold ${data.length} values`);
  }
  if (!Object.hasOwn(WRITE_DESCR, dtype)) throw new RangeError(`cannot write .npy dtype '${dtype}' (float32 or float16)`);
  const stored = dtype === 'float16' ? toHalfData(data) : data;
  const text = headerText(shape, dtype);
  const preamble = 10;
  const padded = text + ' '.repeat((64 - ((preamble + text.length + 1) % 64)) % 64) + '\n';
  if (padded.length > 0xffff) throw new RangeError('.npy header too long for format version 1.0');
  const head = Buffer.alloc(preamble + padded.length);
  head.set(MAGIC);
  head[6] = 1;
  head[7] = 0;
  head.writeUInt16LE(padded.length, 8);
  head.write(padded, preamble, 'latin1');
  return [head, Buffer.from(stored.buffer, stored.byteOffset, stored.byteLength)];
}

export async function writeNpy(path: string, data: Float32Array, shape: readonly number[], dtype: NpyWriteDtype = 'float32'): Promise<void> {
  await writeFileAtomic(path, encodeNpy(data, shape, dtype));
}
