/**
 * The native JPEG decoder (native/jpeg/): its resampler against the float64 reference, its whole
 * pipeline (DCT scaling included) against sharp resizing the fully decoded image, what it declines,
 * and that readImageResized and the decode cache use it.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterEach, describe, expect, it } from 'vitest';
import { resizeDecoderId, readImageResized } from '../../src/io/image.js';
import { loadJpegDecoder, NATIVE_KERNELS } from '../../src/io/jpeg_native.js';
import { expectInputFileError, tempDir } from './tmp.js';
import { JPEG_HEADER_DIRS } from '../../scripts/build-jpeg.mjs';
import { resampleReference } from './resample_reference.js';

const decoder = loadJpegDecoder();
// Where libjpeg-turbo's headers are, the install builds the decoder: a missing one is a failure here,
// not a skip.
const buildable = JPEG_HEADER_DIRS.some((d) => existsSync(join(d, 'jpeglib.h')));

/** A photo-like 600x450 image: smooth gradients and a slow ripple in every channel. */
function photo(width = 600, height = 450): Buffer {
  const raw = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const o = (y * width + x) * 3;
      raw[o] = (x * 255) / width;
      raw[o + 1] = (y * 255) / height;
      raw[o + 2] = 128 + 100 * Math.sin(x / 40) * Math.cos(y / 30);
    }
  }
  return raw;
}

const asRaw = (width: number, height: number, channels: 1 | 3 = 3) => ({ raw: { width, height, channels } });

function meanAndMax(a: Uint8Array, b: Uint8Array): { mean: number; max: number } {
  expect(a.length).toBe(b.length);
  let sum = 0;
  let max = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    sum += d;
    max = Math.max(max, d);
  }
  return { mean: sum / a.length, max };
}

async function fullDecode(jpeg: Buffer): Promise<{ data: Buffer; width: number; height: number }> {
  const { data, info } = await sharp(jpeg).raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height };
}

describe('the native JPEG decoder', () => {
  it('is built wherever libjpeg-turbo is installed', () => {
    if (buildable) expect(decoder.ok ? 'loaded' : decoder.reason).toBe('loaded');
    else expect(decoder.ok).toBe(false);
  });

  describe.skipIf(!decoder.ok)('with the addon', () => {
    const addon = decoder.ok ? decoder.addon : (undefined as never);

    it('names libjpeg-turbo and its version', () => {
      expect(addon.info().version).toMatch(/^libjpeg-turbo \d+\.\d+/);
      expect(resizeDecoderId()).toContain('libjpeg-turbo');
    });

    it('resamples as the float64 reference does, every kernel, reducing and enlarging (at DCT scale 1)', async () => {
      const jpeg = await sharp(photo(), asRaw(600, 450)).jpeg({ quality: 95 }).toBuffer();
      const full = await fullDecode(jpeg);
      // Sizes that keep libjpeg at full scale, so the only difference is the resampler.
      for (const [w, h] of [[400, 300], [599, 449], [800, 333]] as const) {
        for (const kernel of NATIVE_KERNELS) {
          const native = await addon.decodeJpeg(jpeg, w, h, false, NATIVE_KERNELS.indexOf(kernel));
          expect(native.scaleDenom).toBe(1);
          const ref = resampleReference(full.data, 600, 450, { start: 0, length: 600 }, { start: 0, length: 450 }, w, h, kernel);
          const { mean, max } = meanAndMax(native.data, ref);
          expect(max, `${kernel} ${w}x${h}`).toBeLessThanOrEqual(1);
          expect(mean, `${kernel} ${w}x${h}`).toBeLessThan(0.01);
        }
      }
    });

    it('at DCT scales 1/2 to 1/8 matches sharp resizing the full decode within a grey level on average', async () => {
      const jpeg = await sharp(photo(), asRaw(600, 450)).jpeg({ quality: 95 }).toBuffer();
      const full = await fullDecode(jpeg);
      for (const fit of ['cover', 'fill'] as const) {
        for (const [size, denom] of [[32, 8], [64, 4], [100, 4], [224, 2]] as const) {
          const native = await addon.decodeJpeg(jpeg, size, size, fit === 'cover', NATIVE_KERNELS.indexOf('lanczos3'));
          expect(native.scaleDenom, `${fit} ${size}`).toBe(denom);
          const ideal = await sharp(full.data, asRaw(600, 450)).resize(size, size, { fit, kernel: 'lanczos3' }).raw().toBuffer();
          const { mean, max } = meanAndMax(native.data, ideal);
          expect(mean, `${fit} ${size}`).toBeLessThan(0.8);
          expect(max, `${fit} ${size}`).toBeLessThanOrEqual(6);
        }
      }
    });

    it('cuts the same cover square as sharp (a wrong crop offset moves every pixel)', async () => {
      // A horizontal ramp: a crop off by a few source columns changes every output value.
      const width = 600;
      const height = 450;
      const raw = Buffer.alloc(width * height * 3);
      for (let i = 0; i < width * height; i++) raw.fill(Math.round(((i % width) * 255) / width), i * 3, i * 3 + 3);
      const jpeg = await sharp(raw, asRaw(width, height)).jpeg({ quality: 100 }).toBuffer();
      const native = await addon.decodeJpeg(jpeg, 32, 32, true, NATIVE_KERNELS.indexOf('lanczos3'));
      const ideal = await sharp((await fullDecode(jpeg)).data, asRaw(width, height)).resize(32, 32, { fit: 'cover' }).raw().toBuffer();
      expect(meanAndMax(native.data, ideal).mean).toBeLessThan(0.6);
    });

    it('expands a grey JPEG to three equal channels and reports one component', async () => {
      const grey = Buffer.alloc(120 * 90);
      for (let i = 0; i < grey.length; i++) grey[i] = (i * 7) % 251;
      const jpeg = await sharp(grey, asRaw(120, 90, 1)).toColourspace('b-w').jpeg({ quality: 90 }).toBuffer();
      const d = await addon.decodeJpeg(jpeg, 16, 16, true, NATIVE_KERNELS.indexOf('lanczos3'));
      expect(d.channels).toBe(1);
      expect([d.srcWidth, d.srcHeight]).toEqual([120, 90]);
      for (let i = 0; i < d.data.length; i += 3) expect([d.data[i + 1], d.data[i + 2]]).toEqual([d.data[i], d.data[i]]);
    });

    it('declines what sharp would decode differently or reject: truncated data, CMYK, an ICC profile', async () => {
      const jpeg = await sharp(photo(), asRaw(600, 450)).jpeg({ quality: 90 }).toBuffer();
      const lanczos3 = NATIVE_KERNELS.indexOf('lanczos3');
      await expect(addon.decodeJpeg(jpeg.subarray(0, jpeg.length >> 1), 32, 32, true, lanczos3)).rejects.toThrow(/premature end/i);
      await expect(addon.decodeJpeg(Buffer.from('not a jpeg at all'), 32, 32, true, lanczos3)).rejects.toThrow(/not a jpeg/i);
      const cmyk = await sharp(photo(), asRaw(600, 450)).toColourspace('cmyk').jpeg().toBuffer();
      await expect(addon.decodeJpeg(cmyk, 32, 32, true, lanczos3)).rejects.toThrow(/CMYK/);
      const icc = await sharp(photo(), asRaw(600, 450)).withIccProfile('p3').jpeg().toBuffer();
      await expect(addon.decodeJpeg(icc, 32, 32, true, lanczos3)).rejects.toThrow(/ICC/);
      expect(() => addon.decodeJpeg(jpeg, 0, 32, true, lanczos3)).toThrow(/width and height/);
      expect(() => addon.decodeJpeg(jpeg, 32, 32, true, 9)).toThrow(/kernel/);
    });
  });
});

describe.skipIf(!decoder.ok)('readImageResized with the native decoder', () => {
  const saved = process.env.SIMTRIP_JPEG_DECODER;
  afterEach(() => {
    if (saved === undefined) delete process.env.SIMTRIP_JPEG_DECODER;
    else process.env.SIMTRIP_JPEG_DECODER = saved;
  });

  it('decodes JPEGs natively, and through sharp with SIMTRIP_JPEG_DECODER=sharp, the two close', async () => {
    const dir = tempDir();
    const path = join(dir, 'photo.jpg');
    await sharp(photo(), asRaw(600, 450)).jpeg({ quality: 92 }).toFile(path);
    const native = await readImageResized(path, 32);
    expect(native.source).toEqual({ width: 600, height: 450, channels: 3, alpha: false, deep: false });
    const nativeId = resizeDecoderId();
    process.env.SIMTRIP_JPEG_DECODER = 'sharp';
    const viaSharp = await readImageResized(path, 32);
    expect(resizeDecoderId()).toBe('jpeg:sharp');
    expect(nativeId).not.toBe('jpeg:sharp');
    // sharp's own shrink-on-load rounds differently; both stay near the full decode (see the test above).
    expect(meanAndMax(native.data, viaSharp.data).mean).toBeLessThan(2);
    expect(meanAndMax(native.data, viaSharp.data).mean).toBeGreaterThan(0);
  });

  it('hands what it declines to sharp: a CMYK JPEG decodes, a truncated one fails with the path', async () => {
    const dir = tempDir();
    const cmyk = join(dir, 'cmyk.jpg');
    await sharp(photo(), asRaw(600, 450)).toColourspace('cmyk').jpeg().toFile(cmyk);
    const img = await readImageResized(cmyk, 32);
    const expected = await sharp(readFileSync(cmyk)).resize(32, 32, { fit: 'cover', kernel: 'lanczos3' }).toColourspace('srgb').raw().toBuffer();
    expect([...img.data]).toEqual([...expected]);
    const whole = await sharp(photo(), asRaw(600, 450)).jpeg().toBuffer();
    const cut = join(dir, 'cut.jpg');
    writeFileSync(cut, whole.subarray(0, whole.length >> 2));
    await expectInputFileError(readImageResized(cut, 32), cut, /cannot read image/);
  });
});
