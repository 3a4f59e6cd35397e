/**
 * Element types shared by the tensor file formats, and the typed-array views over their bytes.
 * Both safetensors and .npy store little-endian data; the views below assume a little-endian host.
 */
import { endianness } from 'node:os';
import { bfloat16ArrayToFloat32, float16ArrayToFloat32 } from './float16.js';

export type DType =
  | 'float64'
  | 'float32'
  | 'float16'
  | 'bfloat16'
  | 'int64'
  | 'int32'
  | 'int16'
  | 'int8'
  | 'uint8'
  | 'bool';

/** float16 and bfloat16 are exposed as their raw bit patterns (Uint16Array); bool as 0/1 bytes. */
export type TypedArray =
  | Float64Array
  | Float32Array
  | Uint16Array
  | BigInt64Array
  | Int32Array
  | Int16Array
  | Int8Array
  | Uint8Array;

export const DTYPE_BYTES: Readonly<Record<DType, number>> = {
  float64: 8,
  float32: 4,
  float16: 2,
  bfloat16: 2,
  int64: 8,
  int32: 4,
  int16: 2,
  int8: 1,
  uint8: 1,
  bool: 1,
};

type ViewConstructor = new (buffer: ArrayBufferLike, byteOffset: number, length: number) => TypedArray;

const VIEW: Readonly<Record<DType, ViewConstructor>> = {
  float64: Float64Array,
  float32: Float32Array,
  float16: Uint16Array,
  bfloat16: Uint16Array,
  int64: BigInt64Array,
  int32: Int32Array,
  int16: Int16Array,
  int8: Int8Array,
  uint8: Uint8Array,
  bool: Uint8Array,
};

const HOST_IS_LITTLE_ENDIAN = endianness() === 'LE';

/** Number of elements of a shape; [] is a scalar (one element). */
export function shapeSize(shape: readonly number[]): number {
  return shape.reduce((n, d) => n * d, 1);
}

/**
 * Typed view of little-endian bytes. Shares memory when the bytes are aligned for the element type,
 * copies otherwise (typed arrays cannot start at a misaligned offset).
 */
export function viewAs(dtype: DType, bytes: Uint8Array): TypedArray {
  if (!HOST_IS_LITTLE_ENDIAN) throw new Error('simtrip tensor files need a little-endian host');
  const size = DTYPE_BYTES[dtype];
  if (bytes.byteLength % size !== 0) {
    throw new Error(`${bytes.byteLength} bytes is not a whole number of ${dtype} elements`);
  }
  const aligned = bytes.byteOffset % size === 0 ? bytes : bytes.slice();
  return new VIEW[dtype](aligned.buffer, aligned.byteOffset, aligned.byteLength / size);
}

/** Is `data` the typed array `viewAs` would produce for this dtype? */
export function isViewOf(dtype: DType, data: ArrayBufferView): boolean {
  return data.constructor === VIEW[dtype];
}

/**
 * Values as float32: floating types are converted exactly (float64 rounds), integers and bools by
 * value (int64 through Number, exact up to 2^24 like any float32). float32 data is returned as a view
 * when aligned, so it may share memory with `bytes`.
 */
export function toFloat32(dtype: DType, bytes: Uint8Array): Float32Array {
  const view = viewAs(dtype, bytes);
  switch (dtype) {
    case 'float32':
      return view as Float32Array;
    case 'float16':
      return float16ArrayToFloat32(view as Uint16Array);
    case 'bfloat16':
      return bfloat16ArrayToFloat32(view as Uint16Array);
    case 'int64':
      return Float32Array.from(view as BigInt64Array, Number);
    default:
      return Float32Array.from(view as Exclude<TypedArray, BigInt64Array>);
  }
}

/** Reverses the byte order of every element, in place: big-endian .npy data to little-endian. */
export function byteSwapInPlace(bytes: Uint8Array, elementSize: number): void {
  for (let start = 0; start + elementSize <= bytes.length; start += elementSize) {
    bytes.subarray(start, start + elementSize).reverse();
  }
}
