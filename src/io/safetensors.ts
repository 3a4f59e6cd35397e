/**
 * safetensors reader and writer. Layout: u64 little-endian header length N, N bytes of JSON header
 * ({name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {string: string}}), then the
 * data buffer; offsets are relative to the start of the buffer.
 *
 * Reading parses and validates the header only; tensor bytes are read on demand, so a caller that
 * never touches a tensor (e.g. a large classifier head) never reads it.
 */
import { InputFileError } from '../util/errors.js';
import { writeFileAtomic } from './atomic.js';
import {
  DTYPE_BYTES,
  isViewOf,
  shapeSize,
  toFloat32,
  viewAs,
  type DType,
  type TypedArray,
} from './dtype.js';
import { float32ArrayToBfloat16, float32ArrayToFloat16 } from './float16.js';
import { FormatError, openRangeReader, withInputFile, type RangeReader } from './source.js';
import { isRecord } from '../util/values.js';

export type SafetensorsDType = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

const DTYPES: Readonly<Record<SafetensorsDType, DType>> = {
  F64: 'float64',
  F32: 'float32',
  F16: 'float16',
  BF16: 'bfloat16',
  I64: 'int64',
  I32: 'int32',
  I16: 'int16',
  I8: 'int8',
  U8: 'uint8',
  BOOL: 'bool',
};

/** The safetensors name of an element type ("F32" for float32, ...). */
export function safetensorsDtypeOf(dtype: DType): SafetensorsDType {
  const name = (Object.keys(DTYPES) as SafetensorsDType[]).find((k) => DTYPES[k] === dtype);
  if (!name) throw new Error(`no safetensors dtype for ${dtype}`);
  return name;
}

function isSafetensorsDType(value: unknown): value is SafetensorsDType {
  return typeof value === 'string' && Object.hasOwn(DTYPES, value);
}

/** The reference implementation refuses headers above 100 MB; so do we, before allocating. */
const MAX_HEADER_BYTES = 100_000_000;
const METADATA_KEY = '__metadata__';

export interface TensorInfo {
  readonly dtype: SafetensorsDType;
  readonly shape: readonly number[];
}

interface Entry extends TensorInfo {
  readonly begin: number;
  readonly end: number;
}

export class SafetensorsFile {
  /** @internal Use readSafetensors. */
  constructor(
    readonly path: string,
    readonly metadata: Readonly<Record<string, string>>,
    private readonly entries: ReadonlyMap<string, Entry>,
    private readonly source: RangeReader,
    private readonly dataStart: number,
  ) {}

  /** Tensor names in file (offset) order. */
  names(): string[] {
    return [...this.entries.keys()];
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  info(name: string): TensorInfo {
    const { dtype, shape } = this.entry(name);
    return { dtype, shape: [...shape] };
  }

  /** Size of the tensor's data in bytes (from the header; nothing is read). */
  byteLength(name: string): number {
    const { begin, end } = this.entry(name);
    return end - begin;
  }

  /** The tensor's little-endian bytes, freshly read from the file. */
  raw(name: string): Uint8Array {
    const { begin, end } = this.entry(name);
    return this.source.read(this.dataStart + begin, end - begin);
  }

  /** Typed values: F16/BF16 as bit patterns (Uint16Array), I64 as BigInt64Array, BOOL as 0/1 bytes. */
  get(name: string): TypedArray {
    return viewAs(DTYPES[this.entry(name).dtype], this.raw(name));
  }

  /** Values converted to float32 (exact for F16/BF16; integers by value). */
  getFloat32(name: string): Float32Array {
    return toFloat32(DTYPES[this.entry(name).dtype], this.raw(name));
  }

  private entry(name: string): Entry {
    const entry = this.entries.get(name);
    if (!entry) throw new InputFileError(this.path, `no tensor named '${name}'`);
    return entry;
  }
}

function parseMetadata(value: unknown): Record<string, string> {
  if (value === undefined || value === null) return {};
  if (!isRecord(value)) throw new FormatError(`'${METADATA_KEY}' is not an object`);
  for (const [key, v] of Object.entries(value)) {
    if (typeof v !== 'string') throw new FormatError(`metadata value '${key}' is not a string`);
  }
  return value as Record<string, string>;
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function parseEntry(name: string, value: unknown, bufferLength: number): Entry {
  const where = `tensor '${name}'`;
  if (!isRecord(value)) throw new FormatError(`${where}: header entry is not an object`);
  const { dtype, shape, data_offsets: offsets } = value;
  if (!isSafetensorsDType(dtype)) throw new FormatError(`${where}: unsupported dtype ${JSON.stringify(dtype)}`);
  if (!Array.isArray(shape) || !shape.every(isCount)) {
    throw new FormatError(`${where}: shape ${JSON.stringify(shape)} is not a list of sizes`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount)) {
    throw new FormatError(`${where}: data_offsets ${JSON.stringify(offsets)} is not [begin, end]`);
  }
  const [begin, end] = offsets as [number, number];
  if (begin > end || end > bufferLength) {
    throw new FormatError(
      `${where}: data_offsets [${begin}, ${end}] outside the ${bufferLength}-byte data buffer`,
    );
  }
  const expected = shapeSize(shape) * DTYPE_BYTES[DTYPES[dtype]];
  if (end - begin !== expected) {
    throw new FormatError(
      `${where}: ${end - begin} bytes but ${dtype} [${shape.join(', ')}] needs ${expected}`,
    );
  }
  return { dtype, shape: [...shape], begin, end };
}

/** Sorted by offset, so names() follows file order and overlap is a neighbour check. */
function checkNoOverlap(entries: [string, Entry][]): void {
  entries.sort((a, b) => a[1].begin - b[1].begin || a[1].end - b[1].end);
  for (let i = 1; i < entries.length; i++) {
    const [prevName, prev] = entries[i - 1]!;
    const [name, cur] = entries[i]!;
    if (cur.begin < prev.end && cur.end > cur.begin) {
      throw new FormatError(`tensors '${prevName}' and '${name}' overlap in the data buffer`);
    }
  }
}

function decodeUtf8(bytes: Uint8Array): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new FormatError('header is not valid UTF-8');
  }
}

function parseHeader(text: string, bufferLength: number) {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new FormatError(`header is not valid JSON (${(err as Error).message})`);
  }
  if (!isRecord(json)) throw new FormatError('header is not a JSON object');
  const metadata = parseMetadata(json[METADATA_KEY]);
  const entries = Object.entries(json)
    .filter(([name]) => name !== METADATA_KEY)
    .map(([name, value]): [string, Entry] => [name, parseEntry(name, value, bufferLength)]);
  checkNoOverlap(entries);
  return { metadata, entries: new Map(entries) };
}

function readHeaderLength(source: RangeReader): number {
  if (source.stamp.size < 8) {
    throw new FormatError(`file is ${source.stamp.size} bytes, too short for a safetensors header`);
  }
  const prefix = source.read(0, 8);
  const length = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (length > BigInt(source.stamp.size - 8)) {
    throw new FormatError(
      `header length ${length} exceeds the ${source.stamp.size - 8} bytes after the length field`,
    );
  }
  if (length > BigInt(MAX_HEADER_BYTES)) throw new FormatError(`header length ${length} is too large`);
  return Number(length);
}

/** Reads and validates the header of a .safetensors file; tensors are read when asked for. */
export async function readSafetensors(path: string): Promise<SafetensorsFile> {
  const source = openRangeReader(path);
  return withInputFile(path, () => {
    const headerLength = readHeaderLength(source);
    const text = decodeUtf8(source.read(8, headerLength));
    const dataStart = 8 + headerLength;
    const { metadata, entries } = parseHeader(text, source.stamp.size - dataStart);
    return new SafetensorsFile(path, metadata, entries, source, dataStart);
  });
}

export interface TensorToWrite {
  readonly name: string;
  readonly dtype: SafetensorsDType;
  readonly shape: readonly number[];
  /**
   * The dtype's typed array (as `get` returns it), raw little-endian bytes (Uint8Array), or, for the
   * floating dtypes, a Float32Array that is converted (round to nearest even).
   */
  readonly data: ArrayBufferView;
}

function bytesOf(view: ArrayBufferView): Uint8Array {
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

function encodeData(tensor: TensorToWrite): Uint8Array {
  const { name, dtype, data } = tensor;
  const target = DTYPES[dtype];
  const expected = shapeSize(tensor.shape) * DTYPE_BYTES[target];
  let bytes: Uint8Array;
  if (isViewOf(target, data) || data instanceof Uint8Array) bytes = bytesOf(data);
  else if (data instanceof Float32Array && dtype === 'F16') bytes = bytesOf(float32ArrayToFloat16(data));
  else if (data instanceof Float32Array && dtype === 'BF16') bytes = bytesOf(float32ArrayToBfloat16(data));
  else if (data instanceof Float32Array && dtype === 'F64') bytes = bytesOf(Float64Array.from(data));
  else throw new TypeError(`tensor '${name}': ${data.constructor.name} cannot be stored as ${dtype}`);
  if (bytes.byteLength !== expected) {
    throw new RangeError(
      `tensor '${name}': ${bytes.byteLength} bytes of data for ${dtype} [${tensor.shape.join(', ')}] (needs ${expected})`,
    );
  }
  return bytes;
}

function checkTensor(tensor: TensorToWrite, seen: Set<string>): void {
  if (tensor.name === METADATA_KEY || seen.has(tensor.name)) {
    throw new Error(`tensor name '${tensor.name}' is reserved or repeated`);
  }
  if (!isSafetensorsDType(tensor.dtype)) throw new TypeError(`tensor '${tensor.name}': unknown dtype`);
  if (!tensor.shape.every(isCount)) throw new RangeError(`tensor '${tensor.name}': bad shape`);
  seen.add(tensor.name);
}

/**
 * Header chunk followed by the data chunks (not concatenated, so large tensors are not copied).
 * Tensors are laid out widest element first, so with the 8-byte aligned header every tensor starts
 * aligned for its type and there are no gaps (the reference reader rejects gaps).
 */
export function encodeSafetensors(
  tensors: readonly TensorToWrite[],
  metadata: Readonly<Record<string, string>> = {},
): Buffer[] {
  const seen = new Set<string>();
  tensors.forEach((t) => checkTensor(t, seen));
  parseMetadata(metadata);
  const ordered = [...tensors].sort(
    (a, b) => DTYPE_BYTES[DTYPES[b.dtype]] - DTYPE_BYTES[DTYPES[a.dtype]],
  );
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header[METADATA_KEY] = metadata;
  const chunks: Buffer[] = [];
  let offset = 0;
  for (const tensor of ordered) {
    const bytes = encodeData(tensor);
    header[tensor.name] = {
      dtype: tensor.dtype,
      shape: tensor.shape,
      data_offsets: [offset, offset + bytes.byteLength],
    };
    chunks.push(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    offset += bytes.byteLength;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const jsonBytes = Buffer.from(json, 'utf8');
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(jsonBytes.length));
  return [prefix, jsonBytes, ...chunks];
}

export async function writeSafetensors(
  path: string,
  tensors: readonly TensorToWrite[],
  metadata?: Readonly<Record<string, string>>,
): Promise<void> {
  await writeFileAtomic(path, encodeSafetensors(tensors, metadata));
}
