import { describe, expect, it } from 'vitest';
import { confusionHeatmapSvg, shade } from '../../src/report/heatmap.js';
import { checkXml } from './svg_check.js';

/** The cell rectangles in drawing order (row by row): their fill colours. */
function cellFills(svg: string): string[] {
  return [...svg.matchAll(/<rect x="\d+" y="\d+" width="(\d+)" height="\1" fill="(rgb[^"]+)"/g)].map((m) => m[2]!);
}

const darkness = (rgb: string) => 255 * 3 - rgb.match(/\d+/g)!.map(Number).reduce((a, b) => a + b, 0);

describe('confusionHeatmapSvg', () => {
  const matrix = [
    [8, 2, 0],
    [1, 1, 0],
    [0, 5, 5],
  ];
  const svg = confusionHeatmapSvg({ title: 'Confusion <test>', classNames: ['nv', 'mel & co', 'bkl'], matrix });

  it('is well-formed SVG with one shaded cell and one count per matrix entry, and the class names', () => {
    checkXml(svg);
    expect(cellFills(svg)).toHaveLength(9);
    const counts = [...svg.matchAll(/font-size="\d+" fill="#[0-9a-f]+">(\d+)<\/text>/g)].map((m) => Number(m[1]));
    expect(counts).toEqual(matrix.flat());
    expect(svg).toContain('mel &amp; co');
    expect(svg).toContain('Confusion &lt;test&gt;');
    expect(svg).toContain('>predicted</text>');
    expect(svg).toContain('>true</text>');
  });

  it('shades by the share of the true class (row), not by the raw count', () => {
    const fills = cellFills(svg).map(darkness);
    // Row 1 has 1 of 2 in its first cell (50 %); row 0 has 2 of 10 in its second (20 %): 1 < 2 as counts,
    // but the 50 % cell is darker.
    expect(fills[3]!).toBeGreaterThan(fills[1]!);
    expect(fills[0]!).toBeGreaterThan(fills[1]!); // 80 % vs 20 %
    expect(fills[8]!).toBe(fills[7]!); // 5 of 10 each
    expect(fills[2]!).toBe(0); // empty cell: white
    expect(shade(1)).toBe('rgb(0,114,178)');
    expect(shade(0)).toBe('rgb(255,255,255)');
  });

  it('says the shading is the row share, with a colour scale from white (0 %) to blue (100 %)', async () => {
    expect(svg).toContain('colour: share of the true class (each row sums to 100 %); numbers: counts');
    const { svgToPng } = await import('../../src/report/png.js');
    const { decodePng } = await import('../../src/report/tile_sheet.js');
    const png = decodePng(await svgToPng(svg));
    const [, x, y, h] = /<rect x="([\d.]+)" y="([\d.]+)" width="12" height="([\d.]+)" fill="url\(#row-share\)"/.exec(svg)!.map(Number);
    const at = (py: number) => Array.from(png.pixels.subarray((py * png.width + x! + 6) * 3, (py * png.width + x! + 6) * 3 + 3));
    const [top, bottom] = [at(y! + 2), at(y! + h! - 2)];
    for (const [c, v] of [0, 114, 178].entries()) expect(Math.abs(top[c]! - v)).toBeLessThan(12);
    for (const c of [0, 1, 2]) expect(bottom[c]!).toBeGreaterThan(240);
  });

  it('rejects a matrix that does not match the classes', () => {
    expect(() => confusionHeatmapSvg({ title: 't', classNames: ['a', 'b'], matrix })).toThrow(/not 2x2/);
  });
});
