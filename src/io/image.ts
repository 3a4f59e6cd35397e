/**
 * Image decoding through sharp (libvips) into the HWC uint8 RGB layout every data source uses.
 *
 * EXIF orientation is deliberately not applied: PIL (and so the PyTorch pipelines we compare with)
 * does not apply it either, and patches cut from slides carry none.
 */
import { open as openFile, readdir } from 'node:fs/promises';
import { extname, join } from 'node:path';
import type { Sharp } from 'sharp';
import { loadSharp } from '../util/sharp.js';
import { InputFileError } from '../util/errors.js';
import { loadJpegDecoder, looksLikeJpeg, NATIVE_KERNELS } from './jpeg_native.js';

/** What a file held before decoding made it RGB of the wanted size. */
export interface ImageSource {
  readonly width: number;
  readonly height: number;
  /** 1 grey, 2 grey + alpha, 3 RGB, 4 RGBA (or CMYK). */
  readonly channels: number;
  readonly alpha: boolean;
  /** More than 8 bits per sample (16-bit PNG/TIFF), reduced to 8. */
  readonly deep: boolean;
}

export interface RGBImage {
  /** height * width * 3 bytes, row-major, channels R, G, B. */
  readonly data: Uint8Array;
  readonly height: number;
  readonly width: number;
  /** The file's own size and channels, when the decoder read them. */
  readonly source?: ImageSource;
}

export interface ResizeOptions {
  /**
   * 'cover' (default): scale the shorter side to `size`, then crop the centre square.
   * 'fill': scale each axis to `size`, ignoring the aspect ratio.
   */
  readonly fit?: 'cover' | 'fill';
  /** Resampling kernel; sharp's default, lanczos3, unless given. */
  readonly kernel?: 'nearest' | 'cubic' | 'mitchell' | 'lanczos2' | 'lanczos3';
}

export const IMAGE_EXTENSIONS: readonly string[] = ['.png', '.jpg', '.jpeg', '.tif', '.tiff', '.bmp', '.webp'];

/** Alpha dropped, grey and palette images expanded, 16-bit samples reduced: always 3 x uint8. */
async function decodeRGB(path: string, pipeline: Sharp): Promise<RGBImage> {
  try {
    // The header of the file itself (the pipeline's resize and conversions do not change it).
    const meta = await pipeline.metadata();
    const source: ImageSource | undefined =
      meta.width && meta.height && meta.channels
        ? { width: meta.width, height: meta.height, channels: meta.channels, alpha: meta.hasAlpha === true, deep: meta.depth !== undefined && !['uchar', 'char'].includes(meta.depth) }
        : undefined;
    const { data, info } = await pipeline
      .removeAlpha()
      .toColourspace('srgb')
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`decoded to ${info.channels} channels, expected 3`);
    return { data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), height: info.height, width: info.width, ...(source ? { source } : {}) };
  } catch (err) {
    throw new InputFileError(path, `cannot read image: ${(err as Error).message}`);
  }
}

/**
 * Files up to this size are read whole before sharp sees them: given a path, sharp opens and parses the
 * file once for the header (metadata) and again for the pixels, which costs 15-20 % more CPU per JPEG
 * (measured on 600x450 JPEGs, the HAM10000 size). Larger files (whole slides) stream from the path.
 */
const READ_WHOLE_BYTES = 64 * 2 ** 20;

async function readInput(path: string): Promise<string | Buffer> {
  try {
    const file = await openFile(path, 'r');
    try {
      return (await file.stat()).size <= READ_WHOLE_BYTES ? await file.readFile() : path;
    } finally {
      await file.close();
    }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new InputFileError(path, `cannot read image: ${code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
  }
}

/** A header read takes the path: sharp then reads only the header, not the whole file. */
async function openPath(path: string): Promise<Sharp> {
  const sharp = await loadSharp();
  return sharp(path, { failOn: 'error' });
}

/** A pixel decode: a small file is read whole first (see READ_WHOLE_BYTES). */
async function openInput(input: string | Buffer): Promise<Sharp> {
  const sharp = await loadSharp();
  // failOn 'error' rejects truncated files instead of returning partly grey images.
  return sharp(input, { failOn: 'error' });
}

export async function readImageRGB(path: string): Promise<RGBImage> {
  return decodeRGB(path, await openInput(await readInput(path)));
}

/**
 * The image as a size x size RGB square (see ResizeOptions.fit). A JPEG goes to the native decoder
 * (jpeg_native.ts) when it is built; whatever that declines (CMYK, an ICC profile, a damaged file)
 * and every other format goes through sharp.
 */
export async function readImageResized(path: string, size: number, options: ResizeOptions = {}): Promise<RGBImage> {
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`image size must be a positive integer, got ${size}`);
  const fit = options.fit ?? 'cover';
  const kernel = options.kernel ?? 'lanczos3';
  const input = await readInput(path);
  if (typeof input !== 'string' && looksLikeJpeg(input)) {
    const native = await decodeJpegNatively(input, size, fit, kernel);
    if (native) return native;
  }
  const pipeline = (await openInput(input)).resize(size, size, { fit, position: 'centre', kernel });
  return decodeRGB(path, pipeline);
}

async function decodeJpegNatively(bytes: Buffer, size: number, fit: 'cover' | 'fill', kernel: NonNullable<ResizeOptions['kernel']>): Promise<RGBImage | null> {
  const decoder = loadJpegDecoder();
  if (!decoder.ok) return null;
  try {
    const d = await decoder.addon.decodeJpeg(bytes, size, size, fit === 'cover', NATIVE_KERNELS.indexOf(kernel));
    return {
      data: new Uint8Array(d.data.buffer, d.data.byteOffset, d.data.byteLength),
      height: d.height,
      width: d.width,
      source: { width: d.srcWidth, height: d.srcHeight, channels: d.channels, alpha: false, deep: false },
    };
  } catch {
    // Declined: sharp decodes it, or gives the error a user should see.
    return null;
  }
}

/**
 * Which decoder readImageResized uses for JPEGs, for keys of decoded pixels (the decode cache): the
 * two agree to within a grey level or two, not exactly, so entries of one are not served as the other's.
 */
export function resizeDecoderId(): string {
  const decoder = loadJpegDecoder();
  if (!decoder.ok) return 'jpeg:sharp';
  // Once per process: a cold load asks for every file.
  nativeId ??= `jpeg:${decoder.addon.info().version}+dct-scale+antialiased-resample`;
  return nativeId;
}

let nativeId: string | undefined;

/** Width and height from the file header, without decoding the pixels. */
export async function readImageSize(path: string): Promise<{ width: number; height: number }> {
  try {
    const { width, height } = await (await openPath(path)).metadata();
    if (!width || !height) throw new Error('no dimensions in the header');
    return { width, height };
  } catch (err) {
    throw new InputFileError(path, `cannot read image: ${(err as Error).message}`);
  }
}

function byCodeUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

async function readDirectory(dir: string) {
  try {
    return await readdir(dir, { withFileTypes: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const reason = code === 'ENOENT' ? 'no such directory' : code === 'ENOTDIR' ? 'not a directory' : (err as Error).message;
    throw new InputFileError(dir, reason);
  }
}

function isImageName(name: string): boolean {
  return IMAGE_EXTENSIONS.includes(extname(name).toLowerCase());
}

/** Full paths of the image files directly in `dir`, sorted by file name (code-unit order, stable across locales). */
export async function listImages(dir: string): Promise<string[]> {
  const entries = await readDirectory(dir);
  return entries
    .filter((e) => (e.isFile() || e.isSymbolicLink()) && isImageName(e.name))
    .map((e) => e.name)
    .sort(byCodeUnits)
    .map((name) => join(dir, name));
}

/**
 * Full paths of the image files under `dir` at any depth, sorted by path. Entries whose name starts
 * with a dot are skipped: tool folders such as .ipynb_checkpoints hold stale copies of images.
 * Symbolic links to directories are not followed (no cycles).
 */
export async function listImagesRecursive(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (at: string): Promise<void> => {
    for (const e of await readDirectory(at)) {
      if (e.name.startsWith('.')) continue;
      const path = join(at, e.name);
      if (e.isDirectory()) await walk(path);
      else if ((e.isFile() || e.isSymbolicLink()) && isImageName(e.name)) out.push(path);
    }
  };
  await walk(dir);
  return out.sort(byCodeUnits);
}

/** Names of the sub-directories directly in `dir` (dot-names skipped), sorted. */
export async function listSubdirectories(dir: string): Promise<string[]> {
  const entries = await readDirectory(dir);
  return entries
    .filter((e) => e.isDirectory() && !e.name.startsWith('.'))
    .map((e) => e.name)
    .sort(byCodeUnits);
}
