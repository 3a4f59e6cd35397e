/**
 * The torch-written fixtures in test/fixtures/torch/ (made by its generate.py with Debian's
 * python3-torch) and the expected tensors the generator wrote beside each one.
 */
import { openNpz } from '../../src/io/npz.js';
import { TorchTensor } from '../../src/io/torch_pickle.js';
import { fixture } from './tmp.js';

export function torchFixture(name: string): string {
  return fixture('torch', name);
}

export interface ExpectedTensor {
  /** Where the tensor sits in the saved object: "state_dict/module.encoder.conv1.weight". */
  path: string;
  /** torch's dtype name: float32, float16, bfloat16, int64, bool, ... */
  dtype: string;
  shape: number[];
  /** Contiguous little-endian bytes, exactly as torch held them. */
  bytes: Uint8Array;
}

/** F.expected.npz: 'index' (JSON rows [path, dtype, shape, offset]) and 'data' (all bytes). */
export async function expectedTensors(name: string): Promise<ExpectedTensor[]> {
  const npz = await openNpz(`${torchFixture(name)}.expected.npz`);
  const index = JSON.parse(Buffer.from(npz.read('index').data as Uint8Array).toString('utf8')) as [string, string, number[], number][];
  const data = npz.read('data').data as Uint8Array;
  return index.map(([path, dtype, shape, offset], i) => {
    const end = i + 1 < index.length ? index[i + 1]![3] : data.length;
    return { path, dtype, shape, bytes: data.subarray(offset, end) };
  });
}

/** The value at a '/'-separated path through Maps (by key) and arrays (by index). */
export function valueAt(root: unknown, path: string): unknown {
  let at: unknown = root;
  for (const part of path.split('/')) {
    if (at instanceof Map) at = at.get(part);
    else if (Array.isArray(at)) at = at[Number(part)];
    else throw new Error(`no '${part}' in ${path}`);
  }
  return at;
}

export function tensorAt(root: unknown, path: string): TorchTensor {
  const value = valueAt(root, path);
  if (!(value instanceof TorchTensor)) throw new Error(`${path} is not a tensor`);
  return value;
}
