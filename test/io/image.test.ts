import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { listImages, listImagesRecursive, listSubdirectories, readImageResized, readImageRGB, readImageSize } from '../../src/io/image.js';
import { expectInputFileError, fixture, tempDir } from './tmp.js';

/** Writes a lossless PNG from raw interleaved pixels. */
async function writePng(path: string, pixels: Uint8Array, width: number, height: number, channels: 1 | 3 | 4): Promise<void> {
  await sharp(Buffer.from(pixels), { raw: { width, height, channels } }).png().toFile(path);
}

/** width x height RGB image whose pixel (x, y) is (10x + y, 200 - 10x, 7y): every pixel is distinct. */
function gradient(width: number, height: number): Uint8Array {
  const out = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) out.set([10 * x + y, 200 - 10 * x, 7 * y], (y * width + x) * 3);
  }
  return out;
}

function pixel(img: { data: Uint8Array; width: number }, x: number, y: number): number[] {
  const at = (y * img.width + x) * 3;
  return [...img.data.subarray(at, at + 3)];
}

describe('readImageRGB', () => {
  it('decodes a PNG to exact HWC RGB bytes', async () => {
    const path = join(tempDir(), 'g.png');
    const pixels = gradient(5, 3);
    await writePng(path, pixels, 5, 3, 3);
    const img = await readImageRGB(path);
    expect(img.width).toBe(5);
    expect(img.height).toBe(3);
    expect([...img.data]).toEqual([...pixels]);
  });

  it('drops the alpha channel and expands greyscale to three channels', async () => {
    const dir = tempDir();
    const rgba = new Uint8Array([10, 20, 30, 0, 40, 50, 60, 255]);
    await writePng(join(dir, 'a.png'), rgba, 2, 1, 4);
    expect([...(await readImageRGB(join(dir, 'a.png'))).data]).toEqual([10, 20, 30, 40, 50, 60]);
    await writePng(join(dir, 'grey.png'), new Uint8Array([0, 128, 255]), 3, 1, 1);
    const grey = await readImageRGB(join(dir, 'grey.png'));
    expect([...grey.data]).toEqual([0, 0, 0, 128, 128, 128, 255, 255, 255]);
  });

  it('reduces 16-bit images to 8 bits per sample', async () => {
    const path = join(tempDir(), 'deep.png');
    await sharp(Buffer.from(gradient(2, 2)), { raw: { width: 2, height: 2, channels: 3 } })
      .toColourspace('rgb16')
      .png()
      .toFile(path);
    const img = await readImageRGB(path);
    expect(img.data.length).toBe(12);
    expect(pixel(img, 1, 1)).toEqual([11, 190, 7]);
  });

  it('reads the fixture images at 32x32', async () => {
    const img = await readImageRGB(fixture('bit-resnetv2-units1111', 'images', 'img00.png'));
    expect([img.height, img.width, img.data.length]).toEqual([32, 32, 32 * 32 * 3]);
  });

  it('reports missing, corrupt and truncated files with the path', async () => {
    const dir = tempDir();
    const missing = join(dir, 'missing.png');
    await expectInputFileError(readImageRGB(missing), missing, /cannot read image/);
    const garbage = join(dir, 'garbage.png');
    writeFileSync(garbage, 'definitely not an image');
    await expectInputFileError(readImageRGB(garbage), garbage, /cannot read image: .+/);
    const whole = join(dir, 'whole.png');
    await writePng(whole, gradient(20, 20), 20, 20, 3);
    const cut = join(dir, 'cut.png');
    const bytes = readFileSync(whole);
    writeFileSync(cut, bytes.subarray(0, bytes.length - 40));
    await expectInputFileError(readImageRGB(cut), cut, /cannot read image/);
  });
});

describe('readImageResized', () => {
  it("'cover' scales the shorter side and crops the centre", async () => {
    const path = join(tempDir(), 'wide.png');
    await writePng(path, gradient(8, 4), 8, 4, 3);
    // Height already equals the size, so no resampling: the result is exactly columns 2..5.
    const img = await readImageResized(path, 4);
    expect([img.width, img.height]).toEqual([4, 4]);
    for (let y = 0; y < 4; y++) for (let x = 0; x < 4; x++) expect(pixel(img, x, y)).toEqual([10 * (x + 2) + y, 200 - 10 * (x + 2), 7 * y]);
  });

  it("'fill' stretches both axes without cropping", async () => {
    const path = join(tempDir(), 'wide.png');
    await writePng(path, gradient(8, 4), 8, 4, 3);
    const img = await readImageResized(path, 4, { fit: 'fill', kernel: 'nearest' });
    expect([img.width, img.height]).toEqual([4, 4]);
    // Nearest-neighbour halving of the width keeps every other column, from both ends of the image.
    const reds = [0, 1, 2, 3].map((x) => pixel(img, x, 0)[0]);
    expect(reds[0]).toBeLessThanOrEqual(10);
    expect(reds[3]).toBeGreaterThanOrEqual(60);
    expect(reds).toEqual([...reds].sort((a, b) => a! - b!));
  });

  it('rejects a non-positive size and reports unreadable files', async () => {
    const path = join(tempDir(), 'x.png');
    await expect(readImageResized(path, 0)).rejects.toThrow(RangeError);
    await expectInputFileError(readImageResized(path, 8), path, /cannot read image/);
  });
});

describe('listImages', () => {
  it('lists image files by name, case-insensitively by extension, skipping other entries', async () => {
    const dir = tempDir();
    for (const name of ['b.PNG', 'a.jpg', 'c.txt', 'A.tif', 'z.webp', 'm.jpeg', 'k.bmp', 'n.tiff', 'noext']) {
      writeFileSync(join(dir, name), '');
    }
    mkdirSync(join(dir, 'folder.png'));
    expect(await listImages(dir)).toEqual(['A.tif', 'a.jpg', 'b.PNG', 'k.bmp', 'm.jpeg', 'n.tiff', 'z.webp'].map((n) => join(dir, n)));
  });

  it('reports a missing directory or a file given as one', async () => {
    const dir = tempDir();
    await expectInputFileError(listImages(join(dir, 'nope')), join(dir, 'nope'), /no such directory/);
    writeFileSync(join(dir, 'f'), '');
    await expectInputFileError(listImages(join(dir, 'f')), join(dir, 'f'), /not a directory/);
  });
});

describe('listImagesRecursive, listSubdirectories, readImageSize', () => {
  it('lists images at any depth sorted by path, skipping dot-entries and other files', async () => {
    const dir = tempDir();
    for (const rel of ['b.png', 'a/z.JPG', 'a/b/c.tif', 'a/notes.txt', '.hidden/x.png', 'a/.ipynb_checkpoints/z.JPG', '.dot.png']) {
      mkdirSync(join(dir, rel, '..'), { recursive: true });
      writeFileSync(join(dir, rel), '');
    }
    expect(await listImagesRecursive(dir)).toEqual(['a/b/c.tif', 'a/z.JPG', 'b.png'].map((r) => join(dir, r)));
    expect(await listSubdirectories(dir)).toEqual(['a']);
    await expectInputFileError(listImagesRecursive(join(dir, 'nope')), join(dir, 'nope'), /no such directory/);
  });

  it('reads the size from the header and reports unreadable files', async () => {
    const dir = tempDir();
    await writePng(join(dir, 'g.png'), gradient(5, 3), 5, 3, 3);
    expect(await readImageSize(join(dir, 'g.png'))).toEqual({ width: 5, height: 3 });
    writeFileSync(join(dir, 'bad.png'), 'nope');
    await expectInputFileError(readImageSize(join(dir, 'bad.png')), join(dir, 'bad.png'), /cannot read image/);
  });
});
