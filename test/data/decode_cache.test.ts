import { readdirSync, readFileSync, rmSync, statSync, truncateSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import sharp from 'sharp';
import { cacheEntryPath, cacheImages, decodeImages, defaultDecoder, describeDecode, describeSources, readCachedImage, type Decoder } from '../../src/data/decode_cache.js';
import { readImageResized } from '../../src/io/image.js';
import { loadJpegDecoder } from '../../src/io/jpeg_native.js';
import { Rng } from '../../src/util/rng.js';
import { noisyImage, scratchDir, writeImage } from './fixtures.js';

/** Three 30x20 images (JPEG, PNG, TIFF) of different colours. */
async function images(dir: string): Promise<string[]> {
  const rng = new Rng(1);
  const paths = [join(dir, 'a.jpg'), join(dir, 'sub', 'b.png'), join(dir, 'c.tif')];
  const formats = ['jpeg', 'png', 'tiff'] as const;
  for (const [i, p] of paths.entries()) await writeImage(p, noisyImage(30, 20, [40 + 80 * i, 200 - 60 * i, 90], rng), 30, 20, formats[i]);
  return paths;
}

const nativeJpeg = loadJpegDecoder().ok;

function countingDecoder(): { decoder: Decoder; calls: string[] } {
  const calls: string[] = [];
  return { calls, decoder: (path, size, fit) => (calls.push(path), defaultDecoder(path, size, fit)) };
}

describe('decodeImages', () => {
  it('decodes to size x size like readImageResized, in input order', async () => {
    const paths = await images(scratchDir());
    const out = await decodeImages(paths, { size: 8 });
    expect(out.pixels.length).toBe(3 * 8 * 8 * 3);
    expect([...out.kept]).toEqual([0, 1, 2]);
    for (const [i, p] of paths.entries()) {
      const ref = await readImageResized(p, 8);
      expect(Buffer.from(out.pixels.subarray(i * 192, (i + 1) * 192)).equals(Buffer.from(ref.data))).toBe(true);
    }
    expect([out.decoded, out.cached]).toEqual([3, 0]);
  });

  it('serves a second load from the cache without decoding, with identical pixels', async () => {
    const dir = scratchDir();
    const paths = await images(dir);
    const cacheDir = join(dir, 'cache');
    const first = countingDecoder();
    const a = await decodeImages(paths, { size: 8, cacheDir, decoder: first.decoder });
    expect(first.calls).toHaveLength(3);
    const second = countingDecoder();
    const b = await decodeImages(paths, { size: 8, cacheDir, decoder: second.decoder });
    expect(second.calls).toEqual([]);
    expect([b.decoded, b.cached]).toEqual([0, 3]);
    expect(Buffer.from(b.pixels).equals(Buffer.from(a.pixels))).toBe(true);
    // Another size is another entry.
    const third = countingDecoder();
    await decodeImages(paths, { size: 6, cacheDir, decoder: third.decoder });
    expect(third.calls).toHaveLength(3);
  });

  it('writes entries again after the cache folder was deleted during the process (folders it made are remembered)', async () => {
    const dir = scratchDir();
    const paths = await images(dir);
    const cacheDir = join(dir, 'cache');
    await decodeImages(paths, { size: 8, cacheDir });
    rmSync(cacheDir, { recursive: true, force: true });
    const again = countingDecoder();
    const out = await decodeImages(paths, { size: 8, cacheDir, decoder: again.decoder });
    expect(again.calls).toHaveLength(3);
    expect(out.failures).toEqual([]);
    const hits = countingDecoder();
    await decodeImages(paths, { size: 8, cacheDir, decoder: hits.decoder });
    expect(hits.calls).toEqual([]);
  });

  it('keys entries by the JPEG decoder, so pixels of one decoder are not served as the other\'s', async () => {
    const saved = process.env.SIMTRIP_JPEG_DECODER;
    try {
      const a = cacheEntryPath('/c', '/x.jpg', 8, 'cover', 1n, 2n);
      process.env.SIMTRIP_JPEG_DECODER = 'sharp';
      const b = cacheEntryPath('/c', '/x.jpg', 8, 'cover', 1n, 2n);
      // Without the native decoder (not built) both keys name sharp.
      expect(b === a).toBe(!nativeJpeg);
    } finally {
      if (saved === undefined) delete process.env.SIMTRIP_JPEG_DECODER;
      else process.env.SIMTRIP_JPEG_DECODER = saved;
    }
  });

  it('reads no image file on a hit: a JPEG replaced by garbage of the same size and mtime still loads', async () => {
    const dir = scratchDir();
    const [jpeg] = await images(dir);
    const cacheDir = join(dir, 'cache');
    // Whole seconds, so that restoring the mtime below is exact on every file system.
    const mtime = 1_700_000_000;
    utimesSync(jpeg!, mtime, mtime);
    const a = await decodeImages([jpeg!], { size: 8, cacheDir });
    writeFileSync(jpeg!, Buffer.alloc(statSync(jpeg!).size, 0x55));
    utimesSync(jpeg!, mtime, mtime);
    const b = await decodeImages([jpeg!], { size: 8, cacheDir });
    expect(b.failures).toEqual([]);
    expect(Buffer.from(b.pixels).equals(Buffer.from(a.pixels))).toBe(true);
    // A new mtime is a new version of the file: it is decoded again, and now fails.
    utimesSync(jpeg!, mtime, mtime + 5);
    const c = await decodeImages([jpeg!], { size: 8, cacheDir });
    expect(c.failures.map((f) => [f.path, f.kind])).toEqual([[jpeg, 'unreadable image']]);
  });

  it('ignores and rewrites a torn cache entry', async () => {
    const dir = scratchDir();
    const paths = await images(dir);
    const cacheDir = join(dir, 'cache');
    const a = await decodeImages(paths, { size: 8, cacheDir });
    const info = statSync(paths[1]!, { bigint: true });
    const entry = cacheEntryPath(cacheDir, paths[1]!, 8, 'cover', info.mtimeNs, info.size);
    truncateSync(entry, 50);
    const counting = countingDecoder();
    const b = await decodeImages(paths, { size: 8, cacheDir, decoder: counting.decoder });
    expect(counting.calls).toEqual([paths[1]]);
    expect(Buffer.from(b.pixels).equals(Buffer.from(a.pixels))).toBe(true);
    expect(readFileSync(entry).length).toBe(32 + 8 * 8 * 3);
    // One entry per (file, size) and no temporary files left behind.
    const files = readdirSync(join(cacheDir, 'images-v2'), { recursive: true, withFileTypes: true }).filter((e) => e.isFile());
    expect(files.map((e) => e.name.endsWith('.rgb'))).toEqual([true, true, true]);
  });

  it('reports missing and undecodable files with their paths and packs the rest in order', async () => {
    const dir = scratchDir();
    const paths = await images(dir);
    const broken = join(dir, 'broken.png');
    writeFileSync(broken, 'not a png');
    const absent = join(dir, 'absent.jpg');
    const out = await decodeImages([absent, paths[0]!, broken, paths[2]!], { size: 8, cacheDir: join(dir, 'cache') });
    expect(out.failures.map((f) => [f.index, f.path, f.kind])).toEqual([
      [0, absent, 'missing image'],
      [2, broken, 'unreadable image'],
    ]);
    expect(out.failures[1]!.detail).toMatch(/cannot read image/);
    expect([...out.kept]).toEqual([1, 3]);
    const ref = await decodeImages([paths[0]!, paths[2]!], { size: 8 });
    expect(Buffer.from(out.pixels).equals(Buffer.from(ref.pixels))).toBe(true);
  });
});

describe('what a load says about unusual files', () => {
  /** Six 16x16 RGB PNGs, then a 20x12 one, a grayscale one and an RGBA one: patches as they come. */
  async function mixed(dir: string): Promise<string[]> {
    const rng = new Rng(2);
    const paths: string[] = [];
    for (let i = 0; i < 6; i++) {
      paths.push(join(dir, `p${i}.png`));
      await writeImage(paths.at(-1)!, noisyImage(16, 16, [100, 50, 20 * i], rng), 16, 16);
    }
    const odd = join(dir, 'odd.png');
    await writeImage(odd, noisyImage(20, 12, [10, 200, 10], rng), 20, 12);
    const grey = join(dir, 'grey.png');
    await sharp(Buffer.alloc(16 * 16, 90), { raw: { width: 16, height: 16, channels: 1 } }).toColourspace('b-w').png().toFile(grey);
    const rgba = join(dir, 'rgba.png');
    await sharp(Buffer.alloc(16 * 16 * 4, 200), { raw: { width: 16, height: 16, channels: 4 } }).png().toFile(rgba);
    return [...paths, odd, grey, rgba];
  }

  it('counts, once per load, the files of another size and those converted to RGB, from the files and again from the cache', async () => {
    const dir = scratchDir();
    const paths = await mixed(dir);
    const cacheDir = join(dir, 'cache');
    const expected =
      '9 images (0 from cache, 9 decoded) in X s; 1 of 9 differ from the usual 16x16 (20x12 x1) and were resized to 8x8 like the rest ' +
      '(non-square ones centre-cropped); converted to 8-bit RGB: 1 grayscale, 1 with an alpha channel (dropped)';
    const first = await decodeImages(paths, { size: 8, cacheDir });
    expect(describeDecode(first, 8).replace(/in [\d.]+ s/, 'in X s')).toBe(expected);
    const again = await decodeImages(paths, { size: 8, cacheDir });
    expect(again.cached).toBe(9);
    expect(describeDecode(again, 8).replace(/in [\d.]+ s/, 'in X s')).toBe(expected.replace('(0 from cache, 9 decoded)', '(9 from cache, 0 decoded)'));
    const onDisk = await cacheImages(paths, { size: 8, cacheDir });
    expect(describeSources(onDisk.sources, 8)).toBe(describeSources(first.sources, 8));
  });

  it('says nothing when every file is the usual size and RGB', async () => {
    const dir = scratchDir();
    const paths = (await mixed(dir)).slice(0, 6);
    expect(describeDecode(await decodeImages(paths, { size: 8 }), 8)).toMatch(/^6 images \(0 from cache, 6 decoded\) in [\d.]+ s$/);
  });
});

describe('cacheImages (data.keep_images: disk)', () => {
  it('returns valid entries in input order without holding pixels, decoding only misses and torn entries', async () => {
    const dir = scratchDir();
    const paths = await images(dir);
    const absent = join(dir, 'absent.png');
    const cacheDir = join(dir, 'cache');
    const first = countingDecoder();
    const a = await cacheImages([paths[0]!, absent, paths[1]!, paths[2]!], { size: 8, cacheDir, decoder: first.decoder });
    expect(first.calls).toHaveLength(3);
    expect(a).not.toHaveProperty('pixels');
    expect([...a.kept]).toEqual([0, 2, 3]);
    expect(a.failures.map((f) => f.path)).toEqual([absent]);
    const ref = await decodeImages(paths, { size: 8 });
    a.entries.forEach((entry, k) => {
      expect(Buffer.from(readCachedImage(entry, 8, paths[k]!)).equals(Buffer.from(ref.pixels.subarray(k * 192, (k + 1) * 192)))).toBe(true);
    });
    // Warm: headers checked, nothing decoded; a torn entry is decoded and written again.
    truncateSync(a.entries[1]!, 50);
    const second = countingDecoder();
    const b = await cacheImages(paths, { size: 8, cacheDir, decoder: second.decoder });
    expect(second.calls).toEqual([paths[1]]);
    expect([b.decoded, b.cached]).toEqual([1, 2]);
    expect(b.entries).toEqual(a.entries);
    expect(Buffer.from(readCachedImage(b.entries[1]!, 8, paths[1]!)).equals(Buffer.from(ref.pixels.subarray(192, 384)))).toBe(true);
  });
});
