/**
 * Confusion-matrix heat map as SVG. Cells are shaded by the row-normalised value (the share of a true
 * class predicted as each class, so the diagonal reads as per-class recall, which imbalanced sets like
 * HAM10000 need) and labelled with the count. The chart says so under its title and in a colour scale,
 * since a reader would otherwise take the shading for the counts.
 */
import { escapeXml } from './chart.js';

export interface HeatmapOptions {
  title: string;
  classNames: readonly string[];
  /** matrix[true][predicted]: counts. */
  matrix: readonly (readonly number[])[];
}

const fmt = (v: number): string => String(Math.round(v * 100) / 100);

/** White to the palette's blue (#0072b2) as t goes 0 -> 1. */
export function shade(t: number): string {
  const c = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0));
  const mix = (to: number) => Math.round(255 + (to - 255) * c);
  return `rgb(${mix(0x00)},${mix(0x72)},${mix(0xb2)})`;
}

export function confusionHeatmapSvg(options: HeatmapOptions): string {
  const { title, classNames, matrix } = options;
  const k = classNames.length;
  if (matrix.length !== k || matrix.some((row) => row.length !== k)) {
    throw new RangeError(`confusion matrix is not ${k}x${k} (one row and column per class)`);
  }
  const cell = Math.max(26, Math.min(64, Math.floor(420 / Math.max(k, 1))));
  const longest = Math.max(1, ...classNames.map((n) => n.length));
  // About 6.6 px per character at 11 px; column labels are rotated 45 degrees, so they need height.
  const left = 40 + Math.ceil(longest * 6.6);
  const top = 62;
  const bottom = 36 + Math.ceil(longest * 6.6 * Math.SQRT1_2);
  const note = 'colour: share of the true class (each row sums to 100 %); numbers: counts';
  // Room for the colour scale right of the matrix; the bold 14 px title is about 8.6 px per character
  // and the note 6.6: the figure widens rather than clip them.
  const scaleX = left + k * cell + 18;
  const width = Math.max(scaleX + 70, Math.ceil(title.length * 8.6) + 24, Math.ceil(note.length * 6.6) + 24);
  const height = top + k * cell + bottom;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="11">`,
  );
  out.push(`<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`);
  out.push(`<text x="${fmt(width / 2)}" y="22" text-anchor="middle" font-size="14" font-weight="bold">${escapeXml(title)}</text>`);
  out.push(`<text x="${fmt(width / 2)}" y="40" text-anchor="middle" fill="#444444">${escapeXml(note)}</text>`);
  const countSize = cell >= 40 ? 12 : 10;
  matrix.forEach((row, t) => {
    const total = row.reduce((a, b) => a + b, 0);
    row.forEach((count, p) => {
      const share = total > 0 ? count / total : 0;
      const x = left + p * cell;
      const y = top + t * cell;
      out.push(`<rect x="${x}" y="${y}" width="${cell}" height="${cell}" fill="${shade(share)}" stroke="#ffffff"/>`);
      // Dark text on light cells, white on dark ones.
      const ink = share > 0.5 ? '#ffffff' : '#222222';
      out.push(
        `<text x="${fmt(x + cell / 2)}" y="${fmt(y + cell / 2)}" text-anchor="middle" dominant-baseline="middle" font-size="${countSize}" fill="${ink}">${count}</text>`,
      );
    });
    const cy = fmt(top + t * cell + cell / 2);
    out.push(`<text x="${left - 6}" y="${cy}" text-anchor="end" dominant-baseline="middle">${escapeXml(classNames[t]!)}</text>`);
  });
  classNames.forEach((name, p) => {
    const x = fmt(left + p * cell + cell / 2);
    const y = top + k * cell + 10;
    out.push(`<text x="${x}" y="${y}" text-anchor="end" dominant-baseline="middle" transform="rotate(-45 ${x} ${y})">${escapeXml(name)}</text>`);
  });
  out.push(`<rect x="${left}" y="${top}" width="${k * cell}" height="${k * cell}" fill="none" stroke="#555555"/>`);
  // Colour scale: 100 % at the top, 0 % at the bottom, beside the matrix.
  const scaleH = Math.max(60, k * cell);
  out.push(`<linearGradient id="row-share" x1="0" y1="1" x2="0" y2="0"><stop offset="0" stop-color="${shade(0)}"/><stop offset="1" stop-color="${shade(1)}"/></linearGradient>`);
  out.push(`<rect x="${scaleX}" y="${top}" width="12" height="${scaleH}" fill="url(#row-share)" stroke="#555555"/>`);
  for (const [share, y] of [[100, top], [50, top + scaleH / 2], [0, top + scaleH]] as const) {
    out.push(`<text x="${scaleX + 18}" y="${fmt(y)}" dominant-baseline="middle" fill="#333333">${share} %</text>`);
  }
  out.push(`<text x="${fmt(left + (k * cell) / 2)}" y="${height - 8}" text-anchor="middle" font-size="12">predicted</text>`);
  const cy = fmt(top + (k * cell) / 2);
  out.push(`<text x="14" y="${cy}" text-anchor="middle" font-size="12" transform="rotate(-90 14 ${cy})">true</text>`);
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
