import { readFileSync, truncateSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { float16BitsToFloat32 } from '../../src/io/float16.js';
import {
  encodeSafetensors,
  readSafetensors,
  writeSafetensors,
  type TensorToWrite,
} from '../../src/io/safetensors.js';
import { expectInputFileError, fixture, tempDir } from './tmp.js';

const FIXTURE = fixture('resnet-basic1111-f16', 'weights.safetensors');

/** A .safetensors image with an arbitrary (possibly invalid) header, for the error cases. */
function rawFile(header: unknown, data: Uint8Array, headerText = JSON.stringify(header)): Buffer {
  const json = Buffer.from(headerText);
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([prefix, json, data]);
}

function headerOf(bytes: Buffer): Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }> {
  const length = Number(bytes.readBigUInt64LE(0));
  return JSON.parse(bytes.subarray(8, 8 + length).toString('utf8'));
}

const tensors: TensorToWrite[] = [
  { name: 'u8', dtype: 'U8', shape: [3], data: new Uint8Array([0, 127, 255]) },
  { name: 'half.from.f32', dtype: 'F16', shape: [2, 2], data: new Float32Array([1, -2.5, 65504, 1 + 2 ** -11]) },
  { name: 'half.bits', dtype: 'F16', shape: [2], data: new Uint16Array([0x3c00, 0x0001]) },
  { name: 'bf16', dtype: 'BF16', shape: [2], data: new Float32Array([1, -3.140625]) },
  { name: 'f32', dtype: 'F32', shape: [2, 3], data: new Float32Array([0.5, -1, 2, 1e-30, 3e38, -0]) },
  { name: 'f64', dtype: 'F64', shape: [1], data: new Float64Array([Math.PI]) },
  { name: 'i64.scalar', dtype: 'I64', shape: [], data: new BigInt64Array([2n ** 60n + 1n]) },
  { name: 'i32', dtype: 'I32', shape: [2], data: new Int32Array([-2147483648, 7]) },
  { name: 'i16', dtype: 'I16', shape: [1], data: new Int16Array([-300]) },
  { name: 'i8', dtype: 'I8', shape: [2], data: new Int8Array([-128, 5]) },
  { name: 'bool', dtype: 'BOOL', shape: [3], data: new Uint8Array([1, 0, 1]) },
  { name: 'empty', dtype: 'F32', shape: [0, 4], data: new Float32Array(0) },
];

describe('safetensors round trip', () => {
  it('writes and reads back every dtype, shape and the metadata', async () => {
    const path = join(tempDir(), 'sub', 'all.safetensors');
    await writeSafetensors(path, tensors, { format: 'pt', note: 'ünïcode' });
    const file = await readSafetensors(path);
    expect(file.metadata).toEqual({ format: 'pt', note: 'ünïcode' });
    expect(file.names().sort()).toEqual(tensors.map((t) => t.name).sort());
    expect(file.info('half.from.f32')).toEqual({ dtype: 'F16', shape: [2, 2] });
    expect(file.info('i64.scalar')).toEqual({ dtype: 'I64', shape: [] });
    expect([...file.getFloat32('half.from.f32')]).toEqual([1, -2.5, 65504, 1]);
    expect([...(file.get('half.bits') as Uint16Array)]).toEqual([0x3c00, 0x0001]);
    expect([...file.getFloat32('half.bits')]).toEqual([1, 2 ** -24]);
    expect([...file.getFloat32('bf16')]).toEqual([1, -3.140625]);
    expect(file.get('f32')).toEqual(tensors[4]!.data);
    expect(Object.is(file.getFloat32('f32')[5], -0)).toBe(true);
    expect(file.get('f64')).toEqual(new Float64Array([Math.PI]));
    expect(file.get('i64.scalar')).toEqual(new BigInt64Array([2n ** 60n + 1n]));
    expect(file.get('i32')).toEqual(new Int32Array([-2147483648, 7]));
    expect(file.get('i16')).toEqual(new Int16Array([-300]));
    expect(file.get('i8')).toEqual(new Int8Array([-128, 5]));
    expect([...file.getFloat32('i8')]).toEqual([-128, 5]);
    expect([...(file.get('bool') as Uint8Array)]).toEqual([1, 0, 1]);
    expect([...(file.get('u8') as Uint8Array)]).toEqual([0, 127, 255]);
    expect(file.get('empty').length).toBe(0);
  });

  it('lays out an 8-byte aligned header and gap-free, type-aligned tensors', () => {
    const bytes = Buffer.concat(encodeSafetensors(tensors));
    const headerLength = Number(bytes.readBigUInt64LE(0));
    expect(headerLength % 8).toBe(0);
    expect(bytes.subarray(8, 8 + headerLength).toString()).toMatch(/^\{.*\} *$/);
    const header = headerOf(bytes);
    expect(header.__metadata__).toBeUndefined();
    const spans = Object.values(header)
      .map((e) => ({ ...e, size: { F64: 8, I64: 8, F32: 4, I32: 4 }[e.dtype] ?? (e.dtype.endsWith('16') ? 2 : 1) }))
      .sort((a, b) => a.data_offsets[0] - b.data_offsets[0]);
    let end = 0;
    for (const span of spans) {
      expect(span.data_offsets[0]).toBe(end);
      expect(span.data_offsets[0] % span.size).toBe(0);
      end = span.data_offsets[1];
    }
    expect(bytes.length).toBe(8 + headerLength + end);
  });

  it('rejects data that does not match the declared dtype and shape', () => {
    const bad = (t: Partial<TensorToWrite>) => () =>
      encodeSafetensors([{ name: 'x', dtype: 'F32', shape: [2], data: new Float32Array(2), ...t }]);
    expect(bad({ shape: [3] })).toThrow(/needs 12/);
    expect(bad({ dtype: 'I32' })).toThrow(/Float32Array cannot be stored as I32/);
    expect(bad({ dtype: 'NOPE' as 'F32' })).toThrow(/unknown dtype/);
    expect(() =>
      encodeSafetensors([
        { name: 'x', dtype: 'U8', shape: [1], data: new Uint8Array(1) },
        { name: 'x', dtype: 'U8', shape: [1], data: new Uint8Array(1) },
      ]),
    ).toThrow(/repeated/);
  });
});

describe('safetensors golden fixture (torchvision ResNet, F16)', () => {
  it('lists the torchvision state-dict names with their dtypes and shapes', async () => {
    const file = await readSafetensors(FIXTURE);
    const names = file.names();
    expect(names).toHaveLength(74);
    expect(names[0]).toBe('conv1.weight');
    expect(file.metadata).toEqual({ format: 'pt' });
    expect(file.info('conv1.weight')).toEqual({ dtype: 'F16', shape: [64, 3, 7, 7] });
    expect(file.info('layer2.0.downsample.0.weight')).toEqual({ dtype: 'F16', shape: [128, 64, 1, 1] });
    expect(file.info('fc.weight')).toEqual({ dtype: 'F16', shape: [10, 512] });
    const counters = names.filter((n) => n.endsWith('.num_batches_tracked'));
    expect(counters).toHaveLength(12);
    for (const name of counters) {
      expect(file.info(name)).toEqual({ dtype: 'I64', shape: [] });
      expect(file.get(name)).toEqual(new BigInt64Array([0n]));
    }
    for (const name of names.filter((n) => !counters.includes(n))) expect(file.info(name).dtype).toBe('F16');
  });

  it('decodes F16 values as numpy does', async () => {
    const file = await readSafetensors(FIXTURE);
    const conv1 = file.getFloat32('conv1.weight');
    expect(conv1.length).toBe(64 * 3 * 7 * 7);
    expect([...conv1.subarray(0, 3)]).toEqual([-0.0154266357421875, -0.0313720703125, -0.0272216796875]);
    expect(conv1.reduce((s, v) => s + v, 0)).toBeCloseTo(-1.39698988199234, 9);
    const fcBias = file.getFloat32('fc.bias');
    [0.01201, -0.01834, 0.001525, -0.002415, -0.022].forEach((v, i) => expect(fcBias[i]).toBeCloseTo(v, 5));
    const runningVar = file.getFloat32('bn1.running_var');
    [1.701, 0.974, 1.615].forEach((v, i) => expect(runningVar[i]).toBeCloseTo(v, 3));
    expect(runningVar.every((v) => v > 0)).toBe(true);
    for (const name of file.names()) {
      if (file.info(name).dtype === 'F16') expect(file.getFloat32(name).every(Number.isFinite)).toBe(true);
    }
    expect([...file.getFloat32('layer1.0.bn1.num_batches_tracked')]).toEqual([0]);
  });

  it('re-encodes the fixture to an equivalent file', async () => {
    const file = await readSafetensors(FIXTURE);
    const copy = join(tempDir(), 'copy.safetensors');
    await writeSafetensors(
      copy,
      file.names().map((name) => ({ name, ...file.info(name), data: file.raw(name) })),
      file.metadata,
    );
    const again = await readSafetensors(copy);
    expect(again.names().sort()).toEqual(file.names().sort());
    // Buffer.equals: vitest's element-wise toEqual takes about a minute on 9 MB.
    const differing = file.names().filter((name) => !Buffer.from(again.raw(name)).equals(file.raw(name)));
    expect(differing).toEqual([]);
  });
});

describe('safetensors errors', () => {
  const f32 = { dtype: 'F32', shape: [2], data_offsets: [0, 8] };

  async function expectBad(bytes: Uint8Array, reason: RegExp): Promise<void> {
    const path = join(tempDir(), 'bad.safetensors');
    writeFileSync(path, bytes);
    await expectInputFileError(readSafetensors(path), path, reason);
  }

  it('reports a missing file', async () => {
    const path = join(tempDir(), 'missing.safetensors');
    await expectInputFileError(readSafetensors(path), path, /no such file/);
  });

  it('reports files too short for the length field', () => expectBad(new Uint8Array(5), /too short/));

  it('reports a header length beyond the end of the file', async () => {
    const bytes = rawFile({ a: f32 }, new Uint8Array(8));
    bytes.writeBigUInt64LE(10_000n, 0);
    await expectBad(bytes, /header length 10000 exceeds/);
  });

  it('reports a header that is not JSON', () => expectBad(rawFile(null, new Uint8Array(8), '{"a": [1,'), /not valid JSON/));

  it('reports a header that is not an object', () => expectBad(rawFile([1, 2], new Uint8Array(0)), /not a JSON object/));

  it('reports offsets outside the data buffer (a truncated file)', async () => {
    const whole = Buffer.concat(encodeSafetensors([{ name: 'w', dtype: 'F32', shape: [4], data: new Float32Array(4) }]));
    await expectBad(whole.subarray(0, whole.length - 4), /tensor 'w': data_offsets \[0, 16\] outside the 12-byte data buffer/);
  });

  it('reports a byte count inconsistent with dtype and shape', () =>
    expectBad(rawFile({ a: { ...f32, shape: [3] } }, new Uint8Array(8)), /tensor 'a': 8 bytes but F32 \[3\] needs 12/));

  it('reports overlapping tensors', () =>
    expectBad(
      rawFile({ a: f32, b: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, new Uint8Array(8)),
      /'a' and 'b' overlap/,
    ));

  it('reports unsupported dtypes and malformed entries', async () => {
    await expectBad(rawFile({ a: { ...f32, dtype: 'F8_E4M3' } }, new Uint8Array(8)), /unsupported dtype "F8_E4M3"/);
    await expectBad(rawFile({ a: { ...f32, shape: [-2] } }, new Uint8Array(8)), /shape \[-2\]/);
    await expectBad(rawFile({ a: { ...f32, data_offsets: [0] } }, new Uint8Array(8)), /data_offsets \[0\]/);
    await expectBad(rawFile({ __metadata__: { a: 1 } }, new Uint8Array(0)), /metadata value 'a' is not a string/);
  });

  it('reports unknown tensor names', async () => {
    const path = join(tempDir(), 'ok.safetensors');
    await writeSafetensors(path, [{ name: 'a', dtype: 'U8', shape: [1], data: new Uint8Array(1) }]);
    const file = await readSafetensors(path);
    await expectInputFileError(() => file.getFloat32('b'), path, /no tensor named 'b'/);
  });

  it('reads tensors lazily and notices a file rewritten after opening', async () => {
    const path = join(tempDir(), 'lazy.safetensors');
    await writeSafetensors(path, [{ name: 'a', dtype: 'F32', shape: [2], data: new Float32Array([1, 2]) }]);
    const file = await readSafetensors(path);
    const original = readFileSync(path);
    truncateSync(path, original.length - 4);
    await expectInputFileError(() => file.raw('a'), path, /changed on disk/);
    writeFileSync(path, original);
    utimesSync(path, new Date(1), new Date(1));
    await expectInputFileError(() => file.raw('a'), path, /changed on disk/);
  });
});
