/**
 * SVG charts to PNG through sharp (librsvg), for reports that must open anywhere (Markdown viewers,
 * slides). The SVG is kept beside each PNG: it is the exact, text-searchable source, and the fallback
 * where librsvg finds no font and draws the PNG without its text.
 */
import { join } from 'node:path';
import { loadSharp, SharpUnavailable } from '../util/sharp.js';
import { writeFileAtomic } from '../io/atomic.js';

export async function svgToPng(svg: string): Promise<Buffer> {
  const sharp = await loadSharp();
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
    let sharp;
    try {
      sharp = await loadSharp();
    } catch (e) {
      if (e instanceof SharpUnavailable) return false;
      throw e;
    }
    const pixels = await sharp(Buffer.from(svg)).greyscale().raw().toBuffer();
    return pixels.some((v) => v < 128);
  })();
  return textCheck;
}

/**
 * Writes <dir>/<name>.svg and <dir>/<name>.png; returns the PNG's path, or the SVG's where sharp is
 * not installed (the report stays complete, in SVG).
 */
export async function writeChart(dir: string, name: string, svg: string): Promise<string> {
  const svgPath = join(dir, `${name}.svg`);
  await writeFileAtomic(svgPath, svg);
  let bytes: Buffer;
  try {
    bytes = await svgToPng(svg);
  } catch (e) {
    if (e instanceof SharpUnavailable) return svgPath;
    throw e;
  }
  const png = join(dir, `${name}.png`);
  await writeFileAtomic(png, bytes);
  return png;
}
