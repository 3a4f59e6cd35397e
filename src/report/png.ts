/**
 * SVG charts to PNG through sharp (librsvg), for reports that must open anywhere (Markdown viewers,
 * slides). The SVG is kept beside each PNG: it is the exact, text-searchable source, and the fallback
 * where librsvg finds no font and draws the PNG without its text.
 */
import { join } from 'node:path';
import sharp from 'sharp';
import { writeFileAtomic } from '../io/atomic.js';

export async function svgToPng(svg: string): Promise<Buffer> {
  return sharp(Buffer.from(svg)).png({ compressionLevel: 9 }).toBuffer();
}

let textCheck: Promise<boolean> | undefined;

/**
 * Whether text in an SVG comes out in the PNG: librsvg silently draws nothing for text when the
 * system has no usable font (minimal containers). Checked once per process by rendering a word.
 */
export function svgTextRenders(): Promise<boolean> {
  textCheck ??= (async () => {
    const svg =
      '<svg xmlns="http://www.w3.org/2000/svg" width="80" height="30"><rect width="80" height="30" fill="#fff"/>' +
      '<text x="4" y="22" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="18" fill="#000">Hg</text></svg>';
    const pixels = await sharp(Buffer.from(svg)).greyscale().raw().toBuffer();
    return pixels.some((v) => v < 128);
  })();
  return textCheck;
}

/** Writes <dir>/<name>.svg and <dir>/<name>.png; returns the PNG's path. */
export async function writeChart(dir: string, name: string, svg: string): Promise<string> {
  const png = join(dir, `${name}.png`);
  await writeFileAtomic(join(dir, `${name}.svg`), svg);
  await writeFileAtomic(png, await svgToPng(svg));
  return png;
}
