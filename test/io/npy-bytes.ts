/** Builds .npy images with arbitrary headers, for reader tests (independent of the writer under test). */
export function npyBytes(header: string, data: Uint8Array, version: 1 | 2 | 3 = 1): Buffer {
  const prefixLength = version === 1 ? 10 : 12;
  const padded = header + ' '.repeat((64 - ((prefixLength + header.length + 1) % 64)) % 64) + '\n';
  const prefix = Buffer.alloc(prefixLength);
  prefix.write('\x93NUMPY', 0, 'latin1');
  prefix[6] = version;
  if (version === 1) prefix.writeUInt16LE(padded.length, 8);
  else prefix.writeUInt32LE(Buffer.byteLength(padded), 8);
  return Buffer.concat([prefix, Buffer.from(padded, version === 3 ? 'utf8' : 'latin1'), data]);
}

export function npyHeader(descr: string, shape: string, fortranOrder = false): string {
  return `{'descr': '${descr}', 'fortran_order': ${fortranOrder ? 'True' : 'False'}, 'shape': ${shape}, }`;
}

export function bytesOf(view: ArrayBufferView): Uint8Array {
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}
