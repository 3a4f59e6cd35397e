import { copyFileSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openRangeReader, type RangeReader } from '../../src/io/source.js';
import { openTorchFile } from '../../src/io/torch_file.js';
import { PickleStream, PyRecord, TorchDevice, unpickleRestricted } from '../../src/io/torch_pickle.js';
import { FormatError } from '../../src/io/source.js';
import { ForbiddenGlobalError } from '../../src/io/torch_pickle.js';
import { expectedTensors, tensorAt, torchFixture, valueAt } from './torch_fixtures.js';
import { expectInputFileError, tempDir } from './tmp.js';
import { buildZip } from './zip-builder.js';

async function expectBitExact(file: string, fixtureName = file): Promise<number> {
  const torch = await openTorchFile(torchFixture(file));
  const expected = await expectedTensors(fixtureName);
  for (const e of expected) {
    const t = tensorAt(torch.root, e.path);
    expect(t.dtype, e.path).toBe(e.dtype);
    expect([...t.shape], e.path).toEqual(e.shape);
    expect(Buffer.from(torch.tensorBytes(t)).equals(Buffer.from(e.bytes)), e.path).toBe(true);
  }
  return expected.length;
}

function writeTemp(name: string, bytes: Uint8Array): string {
  const path = join(tempDir(), name);
  writeFileSync(path, bytes);
  return path;
}

describe('torch.save files written by torch 1.13', () => {
  it.each(['dtypes.pth', 'dtypes_legacy.pth'])('%s: every dtype, view, offset and stride, bit for bit', async (name) => {
    // fp16 specials (inf, -0, nan, subnormal), bf16, int64 extremes, bool, a scalar and an empty
    // tensor; views sharing one storage at offsets; a transpose and an expand (stride 0).
    expect(await expectBitExact(name)).toBe(20);
  });

  it.each(['dtypes_protocol4.pth', 'dtypes_protocol4_legacy.pth'])('%s: pickle protocol 4 (STACK_GLOBAL, FRAME, MEMOIZE), bit for bit', async (name) => {
    expect(await expectBitExact(name)).toBe(19);
  });

  it('reads the records around the tensors: numbers, strings, containers, bytes, device, Namespace', async () => {
    for (const name of ['dtypes.pth', 'dtypes_legacy.pth', 'dtypes_protocol4.pth', 'dtypes_protocol4_legacy.pth']) {
      const { root } = await openTorchFile(torchFixture(name));
      expect(valueAt(root, 'epoch')).toBe(7);
      expect(valueAt(root, 'name')).toBe('fixture');
      expect(valueAt(root, 'ratio')).toBe(0.25);
      expect(valueAt(root, 'large')).toBe(2 ** 40);
      expect(valueAt(root, 'flags')).toEqual([true, false, null]);
      expect(valueAt(root, 'pair')).toEqual([1, 'two']);
      expect([...(valueAt(root, 'raw') as Uint8Array)]).toEqual([0, 255, 97, 98]);
      expect([...(valueAt(root, 'ids') as number[])].sort()).toEqual([3, 4]);
      expect(valueAt(root, 'device')).toEqual(new TorchDevice('cuda:1'));
      const args = valueAt(root, 'args') as PyRecord;
      expect(args).toBeInstanceOf(PyRecord);
      expect(args.type).toBe('argparse.Namespace');
      expect(Object.fromEntries(args.fields)).toEqual({ lr: 0.05, arch: 'resnet50', dims: [2048, 512] });
    }
  });

  it('keeps views of one storage on one storage, at their offsets', async () => {
    const { root } = await openTorchFile(torchFixture('dtypes.pth'));
    const base = tensorAt(root, 'tensors/base');
    for (const view of ['view_offset', 'view_2d', 'transposed']) expect(tensorAt(root, `tensors/${view}`).storage).toBe(base.storage);
    expect(tensorAt(root, 'tensors/view_offset').storageOffset).toBe(5);
    expect([...tensorAt(root, 'tensors/transposed').stride]).toEqual([1, 6]);
    expect([...tensorAt(root, 'tensors/expanded').stride]).toEqual([0, 1]);
  });

  it('reads a zip file written on a big-endian machine (torch >= 2.1 byteorder record), swapping to little-endian', async () => {
    expect(await expectBitExact('big_endian.pth', 'dtypes.pth')).toBe(20);
  });

  it('refuses a legacy file written on a big-endian machine, saying why', async () => {
    await expectInputFileError(openTorchFile(torchFixture('big_endian_legacy.pth')), torchFixture('big_endian_legacy.pth'), /big-endian machine \(legacy format\)/);
  });

  it('reads a legacy storage view (view_metadata, torch < 0.4)', async () => {
    expect(await expectBitExact('legacy_storage_view.pth')).toBe(1);
  });

  it('reads .bin and .pt names alike (the format is in the bytes, not the extension)', async () => {
    const path = join(tempDir(), 'pytorch_model.pt');
    copyFileSync(torchFixture('dtypes.pth'), path);
    const t = await openTorchFile(path);
    expect(t.format).toBe('zip');
    expect(tensorAt(t.root, 'tensors/scalar').shape).toEqual([]);
  });
});

describe('what the restricted unpickler refuses', () => {
  it('refuses a numpy scalar global, naming it and saying why', async () => {
    const path = torchFixture('forbidden_numpy.pth');
    const e = await expectInputFileError(openTorchFile(path), path, /refused to unpickle the global 'numpy\.core\.multiarray\.scalar'/);
    expect(e.reason).toMatch(/would run code named by the file/);
    expect(e.reason).not.toMatch(/\n/);
  });

  it('refuses a checkpoint whose pickle would run os.system, and runs nothing', async () => {
    const marker = '/tmp/simtrip-fixture-was-executed';
    rmSync(marker, { force: true });
    const path = torchFixture('forbidden_os_system.pth');
    await expectInputFileError(openTorchFile(path), path, /refused to unpickle the global 'posix\.system'/);
    expect(existsSync(marker)).toBe(false);
  });

  function pickle(...parts: (string | number[])[]): PickleStream {
    const bytes = Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'latin1') : Buffer.from(p))));
    return new PickleStream((at, n) => bytes.subarray(at, at + n), 0, bytes.length);
  }

  it('refuses globals named by every opcode that names one (GLOBAL, STACK_GLOBAL, INST, EXT1)', () => {
    expect(() => unpickleRestricted(pickle('\x80\x02cos\nsystem\n.'))).toThrow(ForbiddenGlobalError);
    expect(() => unpickleRestricted(pickle('\x80\x04\x8c\x02os\x8c\x06system\x93.'))).toThrow(/'os\.system'/);
    expect(() => unpickleRestricted(pickle('(S\'ls\'\nios\nsystem\n.'))).toThrow(/'os\.system'/);
    expect(() => unpickleRestricted(pickle('\x80\x02\x82\x01.'))).toThrow(/copyreg extension code 1/);
    // A builtin that is harmless in Python but not on the list is refused all the same.
    expect(() => unpickleRestricted(pickle('\x80\x02c__builtin__\ngetattr\n.'))).toThrow(/'__builtin__\.getattr'/);
  });

  it('fails on hostile or corrupt structure with a FormatError, never a hang or a stray exception', () => {
    // BINBYTES with a negative length would rewind pickleparser's own reader into a loop.
    expect(() => unpickleRestricted(pickle('\x80\x03B', [0xfb, 0xff, 0xff, 0xff], '.'))).toThrow(/corrupt pickle: length -5/);
    expect(() => unpickleRestricted(pickle('\x80\x03B', [0xff, 0xff, 0xff, 0x7f], '.'))).toThrow(/truncated pickle/);
    expect(() => unpickleRestricted(pickle('\x80\x02]q\x00('))).toThrow(FormatError);
    expect(() => unpickleRestricted(pickle('\x80\x02\xff.'))).toThrow(/corrupt pickle near byte/);
    expect(() => unpickleRestricted(pickle('\x80\x02K\x01K\x02R.'))).toThrow(FormatError);
    // A global named by non-strings (STACK_GLOBAL of two ints).
    expect(() => unpickleRestricted(pickle('\x80\x04K\x01K\x02\x93.'))).toThrow(/named by something other than two strings/);
    // A persistent id where none is expected (a legacy header pickle).
    expect(() => unpickleRestricted(pickle('\x80\x02K\x01Q.'))).toThrow(/persistent id/);
  });

  it('refuses complex and quantized storages as unsupported, not as corrupt', () => {
    expect(() => unpickleRestricted(pickle('\x80\x02ctorch\nComplexFloatStorage\n.'))).toThrow(/complex64 tensors \(torch\.ComplexFloatStorage\)/);
  });
});

describe('damaged and unusual files', () => {
  const zipBytes = () => readFileSync(torchFixture('dtypes.pth'));
  const legacyBytes = () => readFileSync(torchFixture('dtypes_legacy.pth'));

  it('reports a truncated zip file in one line', async () => {
    const path = writeTemp('cut.pth', zipBytes().subarray(0, 40000));
    const e = await expectInputFileError(openTorchFile(path), path, /truncated zip archive/);
    expect(e.message).not.toMatch(/\n/);
  });

  it('reports a legacy file cut inside its pickle and inside its storage data', async () => {
    const bytes = legacyBytes();
    const inPickle = writeTemp('a.pth', bytes.subarray(0, 300));
    await expectInputFileError(openTorchFile(inPickle), inPickle, /truncated pickle/);
    const inData = writeTemp('b.pth', bytes.subarray(0, bytes.length - 1000));
    await expectInputFileError(openTorchFile(inData), inData, /truncated/);
  });

  it('reports corrupt storage bytes in a zip file (CRC-32) when the tensor is read', async () => {
    const bytes = Buffer.from(zipBytes());
    // Flip a bit inside the 'big' tensor's storage (float32 1000, 1001, ...).
    const at = bytes.indexOf(Buffer.from(new Float32Array([1000, 1001]).buffer));
    expect(at).toBeGreaterThan(0);
    bytes[at] = bytes[at]! ^ 0x01;
    const path = writeTemp('crc.pth', bytes);
    const torch = await openTorchFile(path);
    expect(() => torch.tensorBytes(tensorAt(torch.root, 'tensors/big'))).toThrow(/CRC-32 mismatch/);
  });

  it('names what a file is when it is not a torch.save checkpoint', async () => {
    const plain = writeTemp('plain.pth', Buffer.from('\x80\x02}q\x00.', 'latin1'));
    await expectInputFileError(openTorchFile(plain), plain, /plain pickles are not read/);
    const text = writeTemp('text.pth', Buffer.from('hello world'));
    await expectInputFileError(openTorchFile(text), text, /not a PyTorch checkpoint/);
    const empty = writeTemp('empty.pth', new Uint8Array(0));
    await expectInputFileError(openTorchFile(empty), empty, /empty file/);
    const script = writeTemp('script.pt', buildZip([{ name: 'm/constants.pkl', data: new Uint8Array([0x80, 2, 0x2e]) }, { name: 'm/code/m.py', data: new Uint8Array(1) }]));
    await expectInputFileError(openTorchFile(script), script, /TorchScript archive/);
    const tar = Buffer.alloc(1024);
    tar.write('ustar', 257, 'latin1');
    const old = writeTemp('old.pth.tar', tar);
    await expectInputFileError(openTorchFile(old), old, /tar-format checkpoint/);
  });

  it.each(['dtypes_legacy.pth', 'dtypes.pth'])('opens %s without reading its storages: only the tensors asked for are read', async (name) => {
    const path = torchFixture(name);
    let read = 0;
    const real = openRangeReader(path);
    const counting: RangeReader = {
      stamp: real.stamp,
      read: (at, n) => {
        read += n;
        return real.read(at, n);
      },
    };
    const torch = await openTorchFile(path, { source: counting });
    const opened = read;
    torch.tensorBytes(tensorAt(torch.root, 'tensors/f32'));
    // The 64 KiB 'big' tensor is never touched: opening reads the pickles (a few KiB) and the legacy
    // storage counts or the zip directory; a tensor read reads its own storage (plus a zip local header).
    expect(opened).toBeLessThan(16384);
    expect(read - opened).toBeLessThan(200);
    expect(real.stamp.size).toBeGreaterThan(65536);
  });
});
