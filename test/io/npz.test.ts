import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { crc32, crc32Table } from '../../src/io/crc32.js';
import { encodeNpy } from '../../src/io/npy.js';
import { openNpz } from '../../src/io/npz.js';
import { buildZip, type MemberSpec } from './zip-builder.js';
import { expectInputFileError, fixture, tempDir } from './tmp.js';

const FIXTURE = fixture('bit-resnetv2-units1111', 'weights.npz');

function npy(values: number[], shape: number[]): Uint8Array {
  return Buffer.concat(encodeNpy(new Float32Array(values), shape));
}

function writeZip(members: MemberSpec[], options?: Parameters<typeof buildZip>[1]): string {
  const path = join(tempDir(), 'w.npz');
  writeFileSync(path, buildZip(members, options));
  return path;
}

const kernel = { name: 'resnet/root/kernel.npy', data: npy([1, 2, 3, 4, 5, 6], [1, 2, 3]) };
const bias = { name: 'resnet/head/bias.npy', data: npy([-0.5, 0.25], [2]) };

describe('crc32', () => {
  it('gives the standard check value and agrees with zlib where Node has it', () => {
    const check = Buffer.from('123456789');
    expect(crc32Table(check)).toBe(0xcbf43926);
    expect(crc32(check)).toBe(0xcbf43926);
    expect(crc32Table(new Uint8Array(0))).toBe(0);
    expect(crc32Table(check.subarray(4), crc32Table(check.subarray(0, 4)))).toBe(0xcbf43926);
    const native = (zlib as { crc32?: (d: Uint8Array) => number }).crc32;
    const data = Uint8Array.from({ length: 10000 }, (_, i) => (i * 31 + 7) & 0xff);
    if (native) expect(crc32Table(data)).toBe(native(data) >>> 0);
  });
});

describe('npz archives written here', () => {
  it('reads a stored archive (the layout of the official BiT downloads)', async () => {
    const npz = await openNpz(writeZip([kernel, bias]));
    expect(npz.names()).toEqual(['resnet/root/kernel', 'resnet/head/bias']);
    const k = npz.read('resnet/root/kernel');
    expect(k).toMatchObject({ dtype: 'float32', shape: [1, 2, 3] });
    expect([...k.toFloat32()]).toEqual([1, 2, 3, 4, 5, 6]);
    expect([...npz.read('resnet/head/bias.npy').data]).toEqual([-0.5, 0.25]);
    expect(npz.has('resnet/head/bias')).toBe(true);
    expect(npz.has('resnet/head/kernel')).toBe(false);
  });

  it('reads deflated members, skips directories and tolerates an archive comment', async () => {
    const path = writeZip(
      [{ name: 'resnet/', data: new Uint8Array(0) }, { ...kernel, method: 8 }, { ...bias, method: 8 }],
      { comment: 'PK\x05\x06 looks like an end record but is only a comment' },
    );
    const npz = await openNpz(path);
    expect(npz.names()).toEqual(['resnet/root/kernel', 'resnet/head/bias']);
    expect([...npz.read('resnet/root/kernel').data]).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('parses ZIP64 end records and extra fields', async () => {
    const npz = await openNpz(writeZip([kernel, { ...bias, method: 8 }], { zip64: true }));
    expect(npz.names()).toEqual(['resnet/root/kernel', 'resnet/head/bias']);
    expect([...npz.read('resnet/head/bias').data]).toEqual([-0.5, 0.25]);
    expect([...npz.read('resnet/root/kernel').data]).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('reads members lazily: a corrupt member only fails when it is read', async () => {
    const garbage = Uint8Array.from({ length: 64 }, (_, i) => (i * 97) & 0xff);
    const path = writeZip([{ ...kernel, method: 8 }, { name: 'head/w.npy', data: bias.data, method: 8, payload: garbage }]);
    const npz = await openNpz(path);
    expect([...npz.read('resnet/root/kernel').data]).toEqual([1, 2, 3, 4, 5, 6]);
    await expectInputFileError(() => npz.read('head/w'), path, /member 'head\/w\.npy': corrupt deflate data/);
  });
});

describe('npz member headers (info)', () => {
  it('gives dtype, shape and sizes from the .npy header alone, stored or deflated, even when the data is corrupt', async () => {
    for (const method of [0, 8]) {
      const path = writeZip([{ ...kernel, method, crc: 0 }, { ...bias, method }]);
      const npz = await openNpz(path);
      expect(npz.info('resnet/root/kernel')).toMatchObject({ dtype: 'float32', shape: [1, 2, 3], dataBytes: 24 });
      expect(npz.info('resnet/head/bias.npy').dataBytes).toBe(8);
      // Reading the whole member checks its CRC: info never did.
      await expectInputFileError(() => npz.read('resnet/root/kernel'), path, /CRC-32 mismatch/);
    }
  });

  it('reads further when the header is longer than the first bytes, and reports a cut header', async () => {
    const shape = Array.from({ length: 60 }, () => 1);
    const long = { name: 'long.npy', data: npy([7], shape) };
    expect(long.data.length).toBeGreaterThan(256);
    for (const method of [0, 8]) {
      const npz = await openNpz(writeZip([{ ...long, method }]));
      expect(npz.info('long')).toMatchObject({ shape, dataBytes: 4 });
    }
    const cut = writeZip([{ name: 'cut.npy', data: long.data.subarray(0, 100) }]);
    await expectInputFileError(async () => (await openNpz(cut)).info('cut'), cut, /member 'cut\.npy': truncated \.npy header/);
    const notNpy = writeZip([{ name: 'x.npy', data: Buffer.from('not an array at all') }]);
    await expectInputFileError(async () => (await openNpz(notNpy)).info('x'), notNpy, /missing \\x93NUMPY magic/);
  });
});

describe('npz written by numpy.savez (stored)', () => {
  it('reads every member with numpy\'s values', async () => {
    const npz = await openNpz(fixture('numpy-savez', 'stored.npz'));
    expect(npz.names()).toEqual(['f32', 'f16', 'i64', 'boolean', 'fortran', 'bigendian', 'scalar']);
    expect(npz.read('f32')).toMatchObject({ dtype: 'float32', shape: [2, 3] });
    expect([...npz.read('f32').data]).toEqual([0, 0.25, 0.5, 0.75, 1, 1.25]);
    expect([...npz.read('f16').toFloat32()]).toEqual([1, -2, 65504, 2 ** -24]);
    expect(npz.read('i64').data).toEqual(new BigInt64Array([-(2n ** 62n), 7n]));
    expect(npz.read('boolean')).toMatchObject({ dtype: 'bool', data: new Uint8Array([1, 0, 1]) });
    const fortran = npz.read('fortran');
    expect(fortran).toMatchObject({ dtype: 'float64', shape: [2, 3, 4] });
    expect([...fortran.data]).toEqual(Array.from({ length: 24 }, (_, i) => i));
    expect([...npz.read('bigendian').data]).toEqual([1.5, -7.25]);
    expect(npz.read('scalar')).toMatchObject({ shape: [], data: new Float32Array([3.5]) });
  });
});

describe('npz golden fixture (BiT ResNet-v2, deflated)', () => {
  it('lists the BiT key layout', async () => {
    const npz = await openNpz(FIXTURE);
    const names = npz.names();
    expect(names).toHaveLength(45);
    expect(names.every((n) => n.startsWith('resnet/'))).toBe(true);
    expect(names[0]).toBe('resnet/root_block/standardized_conv2d/kernel');
    for (let b = 1; b <= 4; b++) {
      const unit = `resnet/block${b}/unit01`;
      expect(names).toContain(`${unit}/a/proj/standardized_conv2d/kernel`);
      for (const part of ['a', 'b', 'c']) {
        expect(names).toContain(`${unit}/${part}/standardized_conv2d/kernel`);
        expect(names).toContain(`${unit}/${part}/group_norm/gamma`);
        expect(names).toContain(`${unit}/${part}/group_norm/beta`);
      }
    }
    for (const n of ['resnet/group_norm/gamma', 'resnet/group_norm/beta', 'resnet/head/conv2d/kernel', 'resnet/head/conv2d/bias']) {
      expect(names).toContain(n);
    }
  });

  it('decodes HWIO kernels and head parameters as numpy does', async () => {
    const npz = await openNpz(FIXTURE);
    const root = npz.read('resnet/root_block/standardized_conv2d/kernel');
    expect(root).toMatchObject({ dtype: 'float32', shape: [7, 7, 3, 64] });
    const r = root.toFloat32();
    expect([...r.subarray(0, 3)]).toEqual([0.05, 1.3, 1.3].map(Math.fround));
    expect(r[r.length - 1]).toBe(Math.fround(-0.95));
    expect(r.reduce((s, v) => s + v, 0)).toBeCloseTo(596.6499055810273, 3);
    expect(npz.read('resnet/block2/unit01/b/standardized_conv2d/kernel').shape).toEqual([3, 3, 128, 128]);
    expect(npz.read('resnet/block4/unit01/a/proj/standardized_conv2d/kernel').shape).toEqual([1, 1, 1024, 2048]);
    expect(npz.read('resnet/head/conv2d/kernel').shape).toEqual([1, 1, 2048, 10]);
    const headBias = npz.read('resnet/head/conv2d/bias').toFloat32();
    [-0.01188318, 0.00542584, -0.01430482, 0.01626129].forEach((v, i) => expect(headBias[i]).toBeCloseTo(v, 7));
  });
});

describe('npz errors', () => {
  function writeBytes(bytes: Uint8Array): string {
    const path = join(tempDir(), 'bad.npz');
    writeFileSync(path, bytes);
    return path;
  }

  it('reports a missing file', async () => {
    const path = join(tempDir(), 'none.npz');
    await expectInputFileError(openNpz(path), path, /no such file/);
  });

  it('reports a file that is not a zip archive', async () => {
    const path = writeBytes(npy([1, 2], [2]));
    await expectInputFileError(openNpz(path), path, /not a zip archive/);
    const empty = writeBytes(new Uint8Array(0));
    await expectInputFileError(openNpz(empty), empty, /not a zip archive/);
  });

  it('reports a truncated archive', async () => {
    const whole = buildZip([kernel, bias]);
    const path = writeBytes(whole.subarray(0, whole.length - 30));
    await expectInputFileError(openNpz(path), path, /truncated zip archive/);
  });

  it('reports a central directory that points past the end record', async () => {
    const whole = buildZip([kernel]);
    whole.writeUInt32LE(whole.length, whole.length - 6); // directory offset
    const path = writeBytes(whole);
    await expectInputFileError(openNpz(path), path, /central directory lies outside/);
  });

  it('reports an unsupported compression method', async () => {
    const path = writeZip([kernel, { ...bias, method: 12 }]);
    const npz = await openNpz(path);
    await expectInputFileError(() => npz.read('resnet/head/bias'), path, /member 'resnet\/head\/bias\.npy': unsupported compression method 12/);
  });

  it('reports a CRC mismatch', async () => {
    const path = writeZip([{ ...kernel, crc: 0x12345678 }]);
    const npz = await openNpz(path);
    await expectInputFileError(() => npz.read('resnet/root/kernel'), path, /CRC-32 mismatch/);
  });

  it('reports a member that is not a valid .npy array', async () => {
    const path = writeZip([{ name: 'x.npy', data: Buffer.from('hello, world'), method: 8 }]);
    const npz = await openNpz(path);
    await expectInputFileError(() => npz.read('x'), path, /member 'x\.npy': not a \.npy file/);
    await expectInputFileError(() => npz.read('y'), path, /no array named 'y'/);
  });

  it('reports the deflated fixture cut short', async () => {
    const whole = readFileSync(FIXTURE);
    const path = writeBytes(whole.subarray(0, 4_000_000));
    await expectInputFileError(openNpz(path), path, /truncated zip archive/);
  });
});
