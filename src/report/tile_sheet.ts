/**
 * Sheets of image tiles with labels: the augmentation preview, the nearest-neighbour grid, and the
 * grid of training views sent to TensorBoard.
 *
 * The tiles are copied pixel for pixel (enlarged by a whole factor, nearest neighbour, when small)
 * into one RGB mosaic, so a test or a reader sees exactly the pixels the network saw. Text, borders
 * and marks go into an SVG around that mosaic, which png.ts renders; librsvg places an image at whole
 * pixel offsets and its own size without resampling, so the mosaic's pixels survive into the PNG.
 */
import { PNG } from 'pngjs';
import { wrapText } from '../util/text.js';
import { escapeXml } from './chart.js';

/** An RGB image, row-major, 3 bytes a pixel. */
export interface RgbImage {
  width: number;
  height: number;
  pixels: Uint8Array;
}

export interface Tile {
  /** side x side x 3 uint8. */
  pixels: Uint8Array;
  side: number;
  /** Lines of text under the tile. */
  caption?: readonly string[];
  /** Colour of a frame drawn around the tile (in the gap, never over its pixels). */
  frame?: string;
  /** A short mark in a disc over the tile's top-right corner (e.g. a cross for a wrong label). */
  mark?: { text: string; color: string };
}

export interface TileSheetSpec {
  title?: string;
  /** One header per column. */
  columns: readonly string[];
  rows: ReadonlyArray<{ label?: readonly string[]; tiles: ReadonlyArray<Tile | undefined> }>;
  /** Tiles smaller than this are enlarged by the largest whole factor that stays at or below it. Default 96. */
  minDisplay?: number;
  /** Lines of explanation under the sheet. */
  notes?: readonly string[];
}

export interface TileSheetLayout {
  /** Where the mosaic sits in the SVG / PNG. */
  mosaicX: number;
  mosaicY: number;
  /** Side of a drawn tile (tile side x scale), and the enlargement. */
  cell: number;
  scale: number;
  /** Top-left corner of tile (row, column) in the SVG / PNG. */
  tileAt(row: number, column: number): { x: number; y: number };
}

export interface TileSheet {
  svg: string;
  mosaic: RgbImage;
  layout: TileSheetLayout;
}

const GAP = 10;
const LINE = 13;
/** Width of a character of 11 px text, about. */
const CHAR = 6.6;
const fmt = (v: number): string => String(Math.round(v * 100) / 100);

export function blankImage(width: number, height: number, rgb: readonly [number, number, number] = [255, 255, 255]): RgbImage {
  const pixels = new Uint8Array(width * height * 3);
  for (let i = 0; i < pixels.length; i += 3) {
    pixels[i] = rgb[0];
    pixels[i + 1] = rgb[1];
    pixels[i + 2] = rgb[2];
  }
  return { width, height, pixels };
}

/** Copies a side x side tile into `dst` at (x, y), each pixel as a scale x scale block. */
export function pasteTile(dst: RgbImage, tile: Uint8Array, side: number, x: number, y: number, scale = 1): void {
  if (tile.length !== side * side * 3) throw new RangeError(`tile holds ${tile.length} bytes, not ${side}x${side}x3`);
  for (let ty = 0; ty < side * scale; ty++) {
    const dy = y + ty;
    if (dy < 0 || dy >= dst.height) continue;
    const srcRow = Math.floor(ty / scale) * side * 3;
    for (let tx = 0; tx < side * scale; tx++) {
      const dx = x + tx;
      if (dx < 0 || dx >= dst.width) continue;
      const s = srcRow + Math.floor(tx / scale) * 3;
      const d = (dy * dst.width + dx) * 3;
      dst.pixels[d] = tile[s]!;
      dst.pixels[d + 1] = tile[s + 1]!;
      dst.pixels[d + 2] = tile[s + 2]!;
    }
  }
}

/** PNG bytes of an RGB image (pngjs: pure JavaScript, so it works where sharp is not installed). */
export function encodePng(image: RgbImage): Buffer {
  const png = new PNG({ width: image.width, height: image.height, colorType: 2, inputColorType: 2, inputHasAlpha: false });
  png.data = Buffer.from(image.pixels.buffer, image.pixels.byteOffset, image.pixels.byteLength);
  return PNG.sync.write(png, { colorType: 2, inputColorType: 2, inputHasAlpha: false });
}

/** RGB pixels of a PNG (tests, and reading thumbnails back). */
export function decodePng(bytes: Uint8Array): RgbImage {
  const png = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  const pixels = new Uint8Array(png.width * png.height * 3);
  for (let i = 0, j = 0; i < pixels.length; i += 3, j += 4) {
    pixels[i] = png.data[j]!;
    pixels[i + 1] = png.data[j + 1]!;
    pixels[i + 2] = png.data[j + 2]!;
  }
  return { width: png.width, height: png.height, pixels };
}

/** The enlargement of a tile of `side` px for a sheet whose tiles should be about `minDisplay` px. */
export function tileScale(side: number, minDisplay: number): number {
  return Math.max(1, Math.floor(minDisplay / side));
}

/**
 * Tiles in rows and columns, `gap` px apart (`rowGap` between rows, default `gap`), without any text:
 * the image TensorBoard gets for the training views. Missing tiles stay background.
 */
export function tileMosaic(
  rows: ReadonlyArray<ReadonlyArray<Tile | undefined>>,
  scale: number,
  gap = GAP,
  rowGap = gap,
): { image: RgbImage; cell: number; at(row: number, column: number): { x: number; y: number } } {
  const side = rows.flat().find((t) => t !== undefined)?.side ?? 1;
  const cell = side * scale;
  const columns = Math.max(1, ...rows.map((r) => r.length));
  const at = (row: number, column: number) => ({ x: column * (cell + gap), y: row * (cell + rowGap) });
  const image = blankImage(columns * cell + (columns - 1) * gap, Math.max(1, rows.length * (cell + rowGap) - rowGap));
  rows.forEach((row, r) =>
    row.forEach((tile, c) => {
      if (!tile) return;
      if (tile.side !== side) throw new RangeError(`a sheet's tiles share one size: ${tile.side} px among ${side} px`);
      pasteTile(image, tile.pixels, side, at(r, c).x, at(r, c).y, scale);
    }),
  );
  return { image, cell, at };
}

/**
 * The sheet as SVG: title, column headers, row labels, the mosaic (as an embedded PNG, placed at
 * whole pixels), captions under the tiles, frames and marks, notes.
 */
export function tileSheet(spec: TileSheetSpec): TileSheet {
  const side = spec.rows.flatMap((r) => r.tiles).find((t) => t !== undefined)?.side ?? 1;
  const scale = tileScale(side, spec.minDisplay ?? 96);
  const captionLines = Math.max(0, ...spec.rows.flatMap((r) => r.tiles.map((t) => t?.caption?.length ?? 0)));
  const { image: mosaic, cell, at } = tileMosaic(
    spec.rows.map((r) => r.tiles),
    scale,
    GAP,
    GAP + captionLines * LINE,
  );
  const labelChars = Math.max(0, ...spec.rows.flatMap((r) => (r.label ?? []).map((l) => l.length)));
  const mosaicX = labelChars > 0 ? 16 + Math.ceil(labelChars * CHAR) : 12;
  // Headers wrap to their column (bold text is about 7.3 px a character), notes to the sheet.
  const headers = spec.columns.map((h) => wrapText(h, Math.max(4, Math.floor((cell + GAP) / 7.3))));
  const headerLines = Math.max(1, ...headers.map((h) => h.length));
  const mosaicY = (spec.title ? 30 : 8) + 8 + headerLines * LINE;
  const width = Math.max(mosaicX + mosaic.width + 16, Math.ceil((spec.title?.length ?? 0) * 8.6) + 24, 560);
  const notes = (spec.notes ?? []).flatMap((n) => wrapText(n, Math.floor((width - 24) / CHAR)));
  const notesH = notes.length * 16;
  const height = mosaicY + mosaic.height + captionLines * LINE + 8 + notesH + 6;
  const tileAt = (row: number, column: number) => {
    const p = at(row, column);
    return { x: mosaicX + p.x, y: mosaicY + p.y };
  };

  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="11">`,
  );
  out.push(`<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`);
  if (spec.title) out.push(`<text x="${fmt(width / 2)}" y="20" text-anchor="middle" font-size="14" font-weight="bold">${escapeXml(spec.title)}</text>`);
  headers.forEach((lines, c) => {
    const x = tileAt(0, c).x + cell / 2;
    lines.forEach((line, i) => {
      out.push(`<text x="${fmt(x)}" y="${mosaicY - 8 - (lines.length - 1 - i) * LINE}" text-anchor="middle" font-weight="bold">${escapeXml(line)}</text>`);
    });
  });
  const png = encodePng(mosaic).toString('base64');
  out.push(`<image x="${mosaicX}" y="${mosaicY}" width="${mosaic.width}" height="${mosaic.height}" href="data:image/png;base64,${png}"/>`);
  spec.rows.forEach((row, r) => {
    const top = tileAt(r, 0).y;
    (row.label ?? []).forEach((line, i) => {
      out.push(`<text x="${mosaicX - 8}" y="${fmt(top + cell / 2 + (i - ((row.label!.length - 1) / 2)) * LINE)}" text-anchor="end" dominant-baseline="middle" fill="#333333">${escapeXml(line)}</text>`);
    });
    row.tiles.forEach((tile, c) => {
      if (!tile) return;
      const { x, y } = tileAt(r, c);
      if (tile.frame) out.push(`<rect x="${x - 2.5}" y="${y - 2.5}" width="${cell + 5}" height="${cell + 5}" fill="none" stroke="${tile.frame}" stroke-width="3"/>`);
      if (tile.mark) {
        out.push(`<circle cx="${x + cell}" cy="${y}" r="8" fill="${tile.mark.color}"/>`);
        out.push(`<text x="${x + cell}" y="${y}" text-anchor="middle" dominant-baseline="central" font-size="11" font-weight="bold" fill="#ffffff">${escapeXml(tile.mark.text)}</text>`);
      }
      (tile.caption ?? []).forEach((line, i) => {
        out.push(`<text x="${fmt(x + cell / 2)}" y="${y + cell + 13 + i * LINE}" text-anchor="middle" fill="#222222">${escapeXml(line)}</text>`);
      });
    });
  });
  notes.forEach((note, i) => {
    out.push(`<text x="12" y="${height - notesH + 10 + i * 16}" fill="#444444">${escapeXml(note)}</text>`);
  });
  out.push('</svg>');
  return { svg: `${out.join('\n')}\n`, mosaic, layout: { mosaicX, mosaicY, cell, scale, tileAt } };
}
