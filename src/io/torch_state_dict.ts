/**
 * A state dict inside a torch.save checkpoint as a TensorFile, so the weight loaders read it as they
 * read a .safetensors file. Tensors are decoded when asked for (TorchFile.tensorBytes).
 */
import { DTYPE_BYTES, shapeSize, toFloat32, viewAs, type TypedArray } from './dtype.js';
import { safetensorsDtypeOf, type TensorInfo } from './safetensors.js';
import type { TensorFile } from './tensor_file.js';
import type { TorchFile } from './torch_file.js';
import type { TorchTensor } from './torch_pickle.js';
import { InputFileError } from '../util/errors.js';

export class TorchStateDict implements TensorFile {
  constructor(
    readonly file: TorchFile,
    private readonly tensors: ReadonlyMap<string, TorchTensor>,
  ) {}

  get path(): string {
    return this.file.path;
  }

  names(): string[] {
    return [...this.tensors.keys()];
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  tensor(name: string): TorchTensor {
    const t = this.tensors.get(name);
    if (!t) throw new InputFileError(this.path, `no tensor named '${name}'`);
    return t;
  }

  info(name: string): TensorInfo {
    const t = this.tensor(name);
    return { dtype: safetensorsDtypeOf(t.dtype), shape: [...t.shape] };
  }

  byteLength(name: string): number {
    const t = this.tensor(name);
    return shapeSize(t.shape) * DTYPE_BYTES[t.dtype];
  }

  raw(name: string): Uint8Array {
    return this.file.tensorBytes(this.tensor(name));
  }

  get(name: string): TypedArray {
    return viewAs(this.tensor(name).dtype, this.raw(name));
  }

  getFloat32(name: string): Float32Array {
    return toFloat32(this.tensor(name).dtype, this.raw(name));
  }
}
