import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { roundToFloat16 } from '../../src/io/float16.js';
import { decodeNpy, encodeNpy, readNpy, writeNpy } from '../../src/io/npy.js';
import { bytesOf, npyBytes, npyHeader } from './npy-bytes.js';
import { expectInputFileError, fixture, tempDir } from './tmp.js';

const decode = (bytes: Uint8Array) => decodeNpy(bytes, 'mem.npy');

describe('npy writer', () => {
  it('writes the exact bytes numpy.save writes for a float32 C array', () => {
    const bytes = Buffer.concat(encodeNpy(new Float32Array([0, 1, 2, 3, 4, 5]), [2, 3]));
    // Reference: np.save(f, np.arange(6, dtype='<f4').reshape(2, 3)) gives a 128-byte header.
    const header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
    expect(bytes.length).toBe(128 + 24);
    expect(bytes.subarray(0, 10)).toEqual(Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, 118, 0]));
    expect(bytes.subarray(10, 128).toString('latin1')).toBe(header.padEnd(117, ' ') + '\n');
    expect(new Float32Array(bytes.buffer.slice(bytes.byteOffset + 128, bytes.byteOffset + 152))).toEqual(
      new Float32Array([0, 1, 2, 3, 4, 5]),
    );
  });

  it('round-trips 1-d, 0-d, empty and 4-d arrays with 64-byte aligned data', async () => {
    const dir = tempDir();
    const cases: [number[], Float32Array][] = [
      [[5], new Float32Array([1.5, -2, 0, 1e-40, 3e38])],
      [[], new Float32Array([3.5])],
      [[0, 4], new Float32Array(0)],
      [[2, 1, 3, 2], Float32Array.from({ length: 12 }, (_, i) => i * 0.25 - 1)],
      [[1, 100000], Float32Array.from({ length: 100000 }, (_, i) => Math.sin(i))],
    ];
    for (const [shape, data] of cases) {
      const [head] = encodeNpy(data, shape);
      expect(head!.length % 64).toBe(0);
      const path = join(dir, `a${shape.join('x')}.npy`);
      await writeNpy(path, data, shape);
      const back = await readNpy(path);
      expect(back.dtype).toBe('float32');
      expect(back.shape).toEqual(shape);
      expect(Buffer.from(bytesOf(back.data)).equals(bytesOf(data))).toBe(true);
      expect(back.toFloat32()).toBe(back.data);
    }
  });

  it('writes the 1-tuple shape with its trailing comma', () => {
    const [head] = encodeNpy(new Float32Array(3), [3]);
    expect(head!.toString('latin1')).toContain("'shape': (3,)");
  });

  it('rejects a shape that does not match the data', () => {
    expect(() => encodeNpy(new Float32Array(6), [2, 2])).toThrow(/does not hold 6/);
    expect(() => encodeNpy(new Float32Array(0), [-1, 0])).toThrow(RangeError);
  });

  it("writes float16 ('<f2') as numpy.save does, rounded to nearest even, at half the size", async () => {
    // Reference: np.save(f, np.array([[0, 1, -2], [65504, 2**-24, 1/3]], dtype='<f2')).
    const values = new Float32Array([0, 1, -2, 65504, 2 ** -24, 1 / 3]);
    const bytes = Buffer.concat(encodeNpy(values, [2, 3], 'float16'));
    const header = "{'descr': '<f2', 'fortran_order': False, 'shape': (2, 3), }";
    expect(bytes.length).toBe(128 + 12);
    expect(bytes.subarray(10, 128).toString('latin1')).toBe(header.padEnd(117, ' ') + '\n');
    expect([...new Uint16Array(bytes.buffer.slice(bytes.byteOffset + 128, bytes.byteOffset + 140))]).toEqual([
      0x0000, 0x3c00, 0xc000, 0x7bff, 0x0001, 0x3555,
    ]);

    const data = Float32Array.from({ length: 64 * 100 }, (_, i) => Math.sin(i) * 10);
    const dir = tempDir();
    await writeNpy(join(dir, 'f32.npy'), data, [64, 100]);
    await writeNpy(join(dir, 'f16.npy'), data, [64, 100], 'float16');
    const back = await readNpy(join(dir, 'f16.npy'));
    expect(back).toMatchObject({ dtype: 'float16', shape: [64, 100] });
    expect(back.toFloat32()).toEqual(Float32Array.from(data, (v) => roundToFloat16(v)));
    const half = statSync(join(dir, 'f16.npy')).size;
    const full = statSync(join(dir, 'f32.npy')).size;
    expect(half - 128).toBe((full - 128) / 2);
  });

  it('refuses float16 values beyond the half range rather than writing Inf', () => {
    expect(() => encodeNpy(new Float32Array([1, 70000]), [2], 'float16')).toThrow(/70000 at index 1 is beyond the float16 range/);
    // Infinity and NaN are what they are, and values that round down to 65504 are in range.
    expect(() => encodeNpy(new Float32Array([Infinity, NaN, 65519]), [3], 'float16')).not.toThrow();
    expect(() => encodeNpy(new Float32Array(1), [1], 'int8' as never)).toThrow(/cannot write .npy dtype 'int8'/);
  });
});

describe('npy reader', () => {
  it('reads every supported dtype', () => {
    const f16 = decode(npyBytes(npyHeader('<f2', '(3,)'), bytesOf(new Uint16Array([0x3c00, 0xc000, 0x0001]))));
    expect(f16.dtype).toBe('float16');
    expect([...f16.data]).toEqual([0x3c00, 0xc000, 0x0001]);
    expect([...f16.toFloat32()]).toEqual([1, -2, 2 ** -24]);

    const f8 = decode(npyBytes(npyHeader('<f8', '(2,)'), bytesOf(new Float64Array([Math.PI, -1]))));
    expect(f8.dtype).toBe('float64');
    expect([...f8.data]).toEqual([Math.PI, -1]);
    expect([...f8.toFloat32()]).toEqual([Math.fround(Math.PI), -1]);

    const i4 = decode(npyBytes(npyHeader('<i4', '(2, 1)'), bytesOf(new Int32Array([-5, 2 ** 31 - 1]))));
    expect(i4).toMatchObject({ dtype: 'int32', shape: [2, 1] });
    expect([...i4.data]).toEqual([-5, 2 ** 31 - 1]);

    const i8 = decode(npyBytes(npyHeader('<i8', '(1,)'), bytesOf(new BigInt64Array([-(2n ** 62n)]))));
    expect(i8.data).toEqual(new BigInt64Array([-(2n ** 62n)]));
    expect([...i8.toFloat32()]).toEqual([-(2 ** 62)]);

    for (const descr of ['|u1', '<u1']) {
      const u1 = decode(npyBytes(npyHeader(descr, '(3,)'), new Uint8Array([0, 128, 255])));
      expect(u1.dtype).toBe('uint8');
      expect([...u1.toFloat32()]).toEqual([0, 128, 255]);
    }
    const b1 = decode(npyBytes(npyHeader('|b1', '(2,)'), new Uint8Array([1, 0])));
    expect(b1.dtype).toBe('bool');
    expect([...b1.data]).toEqual([1, 0]);
  });

  it('converts big-endian data to native order', () => {
    const be = Buffer.alloc(8);
    be.writeFloatBE(1.5, 0);
    be.writeFloatBE(-7.25, 4);
    const arr = decode(npyBytes(npyHeader('>f4', '(2,)'), be));
    expect([...arr.data]).toEqual([1.5, -7.25]);
    const be64 = Buffer.alloc(8);
    be64.writeBigInt64BE(-3n, 0);
    expect(decode(npyBytes(npyHeader('>i8', '(1,)'), be64)).data).toEqual(new BigInt64Array([-3n]));
  });

  it('transposes Fortran-order data to C order', () => {
    // The 2x3x4 array with C-order values 0..23, stored column-major (as np.asfortranarray would).
    const c = Array.from({ length: 24 }, (_, i) => i);
    const fortran = new Float32Array(24);
    for (let i = 0; i < 2; i++) for (let j = 0; j < 3; j++) for (let k = 0; k < 4; k++) fortran[i + 2 * j + 6 * k] = c[12 * i + 4 * j + k]!;
    expect([...fortran.subarray(0, 6)]).toEqual([0, 12, 4, 16, 8, 20]); // as numpy's ravel(order='F')
    const arr = decode(npyBytes(npyHeader('<f4', '(2, 3, 4)', true), bytesOf(fortran)));
    expect(arr.shape).toEqual([2, 3, 4]);
    expect([...arr.data]).toEqual(c);
    const m = decode(npyBytes(npyHeader('<i2', '(2, 3)', true), bytesOf(new Int16Array([1, 4, 2, 5, 3, 6]))));
    expect([...m.data]).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('reads format versions 2.0 and 3.0 and Python 2 style headers', () => {
    const data = bytesOf(new Float32Array([1, 2]));
    for (const version of [2, 3] as const) {
      expect([...decode(npyBytes(npyHeader('<f4', '(2,)'), data, version)).data]).toEqual([1, 2]);
    }
    const py2 = '{"descr": "<f4", "fortran_order": False, "shape": (1L, 2L)}';
    expect(decode(npyBytes(py2, data)).shape).toEqual([1, 2]);
  });

  it('reads data that is not aligned in the source buffer', () => {
    const file = npyBytes(npyHeader('<f8', '(2,)'), bytesOf(new Float64Array([1.25, -2])));
    const shifted = new Uint8Array(file.length + 3);
    shifted.set(file, 3);
    expect([...decode(shifted.subarray(3)).data]).toEqual([1.25, -2]);
  });
});

describe('npy golden fixtures', () => {
  it('reads the BiT and ResNet reference outputs', async () => {
    const cases = [
      { dir: 'bit-resnetv2-units1111', features: 2048, featureSum: 2531.2188, logitSum: 0.112412006, firstLogit: -0.25172538 },
      { dir: 'resnet-basic1111-f16', features: 512, featureSum: 481.26642, logitSum: 1.7058043, firstLogit: 0.11941128 },
    ];
    for (const c of cases) {
      const features = await readNpy(fixture(c.dir, 'features.npy'));
      expect(features).toMatchObject({ dtype: 'float32', shape: [3, c.features] });
      const f = features.toFloat32();
      expect(f.every((v) => Number.isFinite(v) && v >= 0)).toBe(true); // after ReLU + average pool
      expect(f.reduce((s, v) => s + v, 0)).toBeCloseTo(c.featureSum, 2);
      const logits = await readNpy(fixture(c.dir, 'logits.npy'));
      expect(logits).toMatchObject({ dtype: 'float32', shape: [3, 10] });
      expect(logits.toFloat32()[0]).toBeCloseTo(c.firstLogit, 6);
      expect(logits.toFloat32().reduce((s, v) => s + v, 0)).toBeCloseTo(c.logitSum, 5);
    }
  });
});

describe('npy errors', () => {
  async function expectBad(bytes: Uint8Array, reason: RegExp): Promise<void> {
    const path = join(tempDir(), 'bad.npy');
    writeFileSync(path, bytes);
    await expectInputFileError(readNpy(path), path, reason);
  }
  const f32x4 = bytesOf(new Float32Array(4));

  it('reports a missing file', async () => {
    const path = join(tempDir(), 'none.npy');
    await expectInputFileError(readNpy(path), path, /no such file/);
  });

  it('reports a file without the magic string', () => expectBad(Buffer.from('PK\x03\x04 not numpy'), /not a \.npy file/));

  it('reports truncated data', () =>
    expectBad(npyBytes(npyHeader('<f4', '(2, 3)'), f32x4), /truncated: float32 \[2, 3\] needs 24 data bytes but there are 16/));

  it('reports a truncated header', () => expectBad(npyBytes(npyHeader('<f4', '(4,)'), f32x4).subarray(0, 40), /truncated/));

  it('reports unsupported dtypes and object arrays', async () => {
    await expectBad(npyBytes(npyHeader('<c8', '(2,)'), f32x4), /unsupported dtype '<c8'/);
    await expectBad(npyBytes(npyHeader('|O', '(2,)'), f32x4), /pickled Python objects/);
    await expectBad(npyBytes("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,)}", f32x4), /structured dtype/);
  });

  it('reports malformed headers and unknown versions', async () => {
    await expectBad(npyBytes("{'descr': '<f4', 'shape': (4,)}", f32x4), /fortran_order/);
    await expectBad(npyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (4,", f32x4), /cannot parse header/);
    await expectBad(npyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (-4,)}", f32x4), /shape \[-4\]/);
    await expectBad(npyBytes("__import__('os')", f32x4), /cannot parse header/);
    const v9 = npyBytes(npyHeader('<f4', '(4,)'), f32x4);
    v9[6] = 9;
    await expectBad(v9, /unsupported \.npy version 9\.0/);
  });
});
