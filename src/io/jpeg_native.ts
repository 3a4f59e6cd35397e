/**
 * The native JPEG decoder (native/jpeg/, build/Release/simtrip_jpeg.node): libjpeg-turbo with DCT
 * scaling and an antialiased resample, about a fifth of sharp's CPU per small square from a 600x450
 * photo. image.ts tries it first for JPEG files and falls back to sharp for whatever it declines.
 */
import { loadBuiltAddon, type AddonLoad } from '../engine/built_addon.js';

export interface NativeDecoded {
  data: Uint8Array;
  width: number;
  height: number;
  srcWidth: number;
  srcHeight: number;
  /** Components in the file: 1 grey, 3 colour. */
  channels: number;
  /** The DCT scale libjpeg decoded at (1, 2, 4 or 8). */
  scaleDenom: number;
}

export interface JpegAddon {
  info(): { version: string; jpegLibVersion: number };
  /** Rejects with the reason when the file is not one this path decodes as sharp would. */
  decodeJpeg(bytes: Uint8Array, width: number, height: number, cover: boolean, kernel: number): Promise<NativeDecoded>;
}

/** Kernel codes of native/jpeg/resample.h, in its order. */
export const NATIVE_KERNELS = ['nearest', 'cubic', 'mitchell', 'lanczos2', 'lanczos3'] as const;

export const JPEG_ADDON_FILE = 'build/Release/simtrip_jpeg.node';

let cached: AddonLoad<JpegAddon> | undefined;

/** SIMTRIP_JPEG_DECODER=sharp turns the native decoder off (every image through sharp). */
export function loadJpegDecoder(): AddonLoad<JpegAddon> {
  if (process.env.SIMTRIP_JPEG_DECODER === 'sharp') {
    return { ok: false, reason: 'turned off by SIMTRIP_JPEG_DECODER=sharp', hint: 'unset SIMTRIP_JPEG_DECODER' };
  }
  cached ??= loadBuiltAddon<JpegAddon>({
    file: JPEG_ADDON_FILE,
    status: 'build/simtrip_jpeg.status.json',
    what: 'native JPEG decoder',
    hint: 'apt-get install libjpeg62-turbo-dev && npm rebuild simtrip (or node scripts/build-jpeg.mjs in a checkout)',
    loadHint: 'it links against libjpeg.so.62: apt-get install libjpeg62-turbo, then npm rebuild simtrip',
    check: (addon) => {
      if (typeof addon.decodeJpeg !== 'function') throw new Error('no decodeJpeg export');
      addon.info();
    },
  });
  return cached;
}

/** A JPEG starts with SOI followed by another marker. */
export function looksLikeJpeg(bytes: Uint8Array): boolean {
  return bytes.length > 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff;
}
