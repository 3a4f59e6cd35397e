/**
 * BiT weight files written from the architecture (not from the code under test): the official .npz
 * key layout (HWIO kernels) and timm's resnetv2_*_bit state dict names (OIHW kernels, 1x1 conv head).
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { crc32Table } from '../../src/io/crc32.js';
import { float32ArrayToFloat16 } from '../../src/io/float16.js';
import { Rng } from '../../src/util/rng.js';
import { bytesOf, npyBytes, npyHeader } from '../io/npy-bytes.js';
import { buildZip, type MemberSpec } from '../io/zip-builder.js';

export interface BitArch {
  depths: number[];
  widthFactor?: number;
  /** Root width before the width factor (64 in BiT). */
  width?: number;
  rootKernel?: number;
  numClasses?: number;
}

export interface ArraySpec {
  name: string;
  shape: number[];
}

/** Every conv and norm of the pre-activation ResNet-v2, as (unit path, kind, shape) in file order. */
function bitModules(a: BitArch) {
  const base = (a.width ?? 64) * (a.widthFactor ?? 1);
  const k = a.rootKernel ?? 7;
  const convs: { bit: string; timm: string; hwio: number[] }[] = [{ bit: 'root_block', timm: 'stem.conv', hwio: [k, k, 3, base] }];
  const norms: { bit: string; timm: string; c: number }[] = [];
  let cin = base;
  a.depths.forEach((n, s) => {
    const cout = 4 * base * 2 ** s;
    const cmid = cout / 4;
    for (let j = 0; j < n; j++) {
      const bit = `block${s + 1}/unit${String(j + 1).padStart(2, '0')}`;
      const timm = `stages.${s}.blocks.${j}`;
      norms.push({ bit: `${bit}/a`, timm: `${timm}.norm1`, c: cin }, { bit: `${bit}/b`, timm: `${timm}.norm2`, c: cmid }, { bit: `${bit}/c`, timm: `${timm}.norm3`, c: cmid });
      convs.push(
        { bit: `${bit}/a`, timm: `${timm}.conv1`, hwio: [1, 1, cin, cmid] },
        { bit: `${bit}/b`, timm: `${timm}.conv2`, hwio: [3, 3, cmid, cmid] },
        { bit: `${bit}/c`, timm: `${timm}.conv3`, hwio: [1, 1, cmid, cout] },
      );
      if (j === 0) convs.push({ bit: `${bit}/a/proj`, timm: `${timm}.downsample.conv`, hwio: [1, 1, cin, cout] });
      cin = cout;
    }
  });
  return { convs, norms, features: cin };
}

/** The official BiT npz arrays: resnet/<unit>/{a,b,c}/standardized_conv2d/kernel, group_norm, head. */
export function bitNpzArrays(a: BitArch): ArraySpec[] {
  const { convs, norms, features } = bitModules(a);
  const out: ArraySpec[] = convs.map((c) => ({ name: `resnet/${c.bit}/standardized_conv2d/kernel`, shape: c.hwio }));
  for (const n of [...norms, { bit: '', c: features }]) {
    const at = n.bit ? `resnet/${n.bit}/group_norm` : 'resnet/group_norm';
    out.push({ name: `${at}/gamma`, shape: [n.c] }, { name: `${at}/beta`, shape: [n.c] });
  }
  if (a.numClasses) {
    out.push({ name: 'resnet/head/conv2d/kernel', shape: [1, 1, features, a.numClasses] }, { name: 'resnet/head/conv2d/bias', shape: [a.numClasses] });
  }
  return out;
}

/** timm resnetv2_*_bit state dict names and PyTorch shapes; `batchNorm` adds running statistics. */
export function timmBitArrays(a: BitArch, batchNorm = false): ArraySpec[] {
  const { convs, norms, features } = bitModules(a);
  const out: ArraySpec[] = convs.map((c) => ({ name: `${c.timm}.weight`, shape: [c.hwio[3]!, c.hwio[2]!, c.hwio[0]!, c.hwio[1]!] }));
  for (const n of [...norms, { timm: 'norm', c: features }]) {
    const keys = batchNorm ? ['weight', 'bias', 'running_mean', 'running_var'] : ['weight', 'bias'];
    for (const k of keys) out.push({ name: `${n.timm}.${k}`, shape: [n.c] });
  }
  if (a.numClasses) out.push({ name: 'head.fc.weight', shape: [a.numClasses, features, 1, 1] }, { name: 'head.fc.bias', shape: [a.numClasses] });
  return out;
}

const size = (shape: readonly number[]) => shape.reduce((n, d) => n * d, 1);

/** Seeded values for each array (gammas near 1 so BiT's norms stay well-conditioned). */
export function randomValues(arrays: readonly ArraySpec[], seed: number): Map<string, Float32Array> {
  const rng = new Rng(seed, 'bit-file');
  return new Map(
    arrays.map((a) => {
      const v = new Float32Array(size(a.shape));
      const gamma = /(gamma|norm\d?\.weight)$/.test(a.name);
      for (let i = 0; i < v.length; i++) v[i] = gamma ? 1 + 0.1 * rng.normal() : 0.1 * rng.normal();
      return [a.name, v];
    }),
  );
}

const shapeText = (s: readonly number[]) => `(${s.join(', ')}${s.length === 1 ? ',' : ''})`;

export interface NpzOptions {
  dtype?: 'f4' | 'f2';
  /** 0 stored (BiT's files), 8 deflate. */
  method?: 0 | 8;
  /** Members whose recorded CRC is wrong: reading them fails. */
  corrupt?: string[];
}

/** An .npz of the arrays with their values, as numpy.savez writes it. */
export function npzBytes(arrays: readonly ArraySpec[], values: Map<string, Float32Array>, opts: NpzOptions = {}): Buffer {
  const members: MemberSpec[] = arrays.map((a) => {
    const v = values.get(a.name)!;
    const data = opts.dtype === 'f2' ? bytesOf(float32ArrayToFloat16(v)) : bytesOf(v);
    const bytes = npyBytes(npyHeader(`<${opts.dtype ?? 'f4'}`, shapeText(a.shape)), data);
    return { name: `${a.name}.npy`, data: bytes, method: opts.method ?? 0, crc: opts.corrupt?.includes(a.name) ? 0 : undefined };
  });
  return buildZip(members);
}

/**
 * A stored .npz whose array data are holes in a sparse file: full-size headers and directory, no data
 * written, so tests can build a multi-GB BiT file in milliseconds. Member CRCs are wrong (data unread).
 */
export function writeSparseNpz(path: string, arrays: readonly ArraySpec[]): number {
  const fd = openSync(path, 'w');
  const u16 = (v: number) => Buffer.from([v & 0xff, v >> 8]);
  const u32 = (v: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v >>> 0);
    return b;
  };
  try {
    const central: Buffer[] = [];
    let offset = 0;
    for (const a of arrays) {
      const name = Buffer.from(`${a.name}.npy`);
      const header = npyBytes(npyHeader('<f4', shapeText(a.shape)), new Uint8Array(0));
      const total = header.length + 4 * size(a.shape);
      const common = [u16(0), u16(0), u16(0), u16(0x21), u32(crc32Table(header)), u32(total), u32(total), u16(name.length)];
      const local = Buffer.concat([u32(0x04034b50), u16(20), ...common, u16(0), name, header]);
      writeSync(fd, local, 0, local.length, offset);
      central.push(Buffer.concat([u32(0x02014b50), u16(20), u16(20), ...common, u16(0), u16(0), u16(0), u16(0), u32(0), u32(offset), name]));
      offset += local.length + total - header.length;
    }
    const dir = Buffer.concat(central);
    const eocd = Buffer.concat([u32(0x06054b50), u16(0), u16(0), u16(arrays.length), u16(arrays.length), u32(dir.length), u32(offset), u16(0)]);
    const tail = Buffer.concat([dir, eocd]);
    writeSync(fd, tail, 0, tail.length, offset);
    return offset + tail.length;
  } finally {
    closeSync(fd);
  }
}
