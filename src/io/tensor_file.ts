/**
 * What the weight loaders read a state dict through: named tensors with a dtype and shape, decoded
 * on demand. A .safetensors file is one; so is a state dict inside a torch.save checkpoint
 * (torch_state_dict.ts), and a renamed view of either (a released checkpoint's backbone under the
 * names simtrip's models use).
 */
import type { TypedArray } from './dtype.js';
import type { TensorInfo } from './safetensors.js';

export interface TensorFile {
  /** The file the tensors come from, for messages. */
  readonly path: string;
  names(): string[];
  has(name: string): boolean;
  info(name: string): TensorInfo;
  /** Size of the tensor's data in bytes (from the header; nothing is read). */
  byteLength(name: string): number;
  /** The tensor's contiguous little-endian bytes. */
  raw(name: string): Uint8Array;
  /** Typed values: F16/BF16 as bit patterns (Uint16Array), I64 as BigInt64Array, BOOL as 0/1 bytes. */
  get(name: string): TypedArray;
  /** Values converted to float32. */
  getFloat32(name: string): Float32Array;
  /** The name a tensor has in the underlying file, for views that rename (the name itself otherwise). */
  fileName?(name: string): string;
}

/**
 * `file` with some tensors under other names: `renames` maps a file name to the name shown. Names
 * not in the map keep theirs; a rename onto a name the file already has is not applied.
 */
export class RenamedTensorFile implements TensorFile {
  private readonly toFile = new Map<string, string>();
  private readonly order: string[] = [];

  constructor(
    private readonly file: TensorFile,
    renames: ReadonlyMap<string, string>,
  ) {
    const original = new Set(file.names());
    const renamed: string[] = [];
    const kept: string[] = [];
    for (const name of file.names()) {
      const to = renames.get(name);
      if (to !== undefined && to !== name && !original.has(to) && !this.toFile.has(to)) {
        this.toFile.set(to, name);
        renamed.push(to);
      } else {
        this.toFile.set(name, name);
        kept.push(name);
      }
    }
    // Renamed tensors first: they are the part the caller picked out.
    this.order = [...renamed, ...kept];
  }

  get path(): string {
    return this.file.path;
  }

  /** The name a tensor has in the file. */
  fileName(name: string): string {
    return this.toFile.get(name) ?? name;
  }

  names(): string[] {
    return [...this.order];
  }

  has(name: string): boolean {
    return this.toFile.has(name);
  }

  info(name: string) {
    return this.file.info(this.fileName(name));
  }

  byteLength(name: string): number {
    return this.file.byteLength(this.fileName(name));
  }

  raw(name: string): Uint8Array {
    return this.file.raw(this.fileName(name));
  }

  get(name: string): TypedArray {
    return this.file.get(this.fileName(name));
  }

  getFloat32(name: string): Float32Array {
    return this.file.getFloat32(this.fileName(name));
  }
}
