/**
 * The UMAP chart: seeded, classes separated as the features are, and its pixels: each class's points
 * and legend swatch in the class's colour, legend counts equal to the class counts; a second panel by
 * group when there are groups.
 */
import { describe, expect, it } from 'vitest';
import { svgToPng } from '../../src/report/png.js';
import { decodePng, type RgbImage } from '../../src/report/tile_sheet.js';
import { categoricalColors, umapChart, type UmapInput } from '../../src/report/umap.js';
import { Rng } from '../../src/util/rng.js';
import { checkXml } from './svg_check.js';

const CLASSES = ['tumour', 'stroma', 'lymph & <debris>'];
const COUNTS = [18, 12, 6];

/** Three well-separated clusters in 8-d (one per class), plus one unlabelled point; two groups. */
function input(extra: Partial<UmapInput> = {}): UmapInput {
  const rng = new Rng(4);
  const labels = Int32Array.from([...COUNTS.flatMap((n, c) => Array<number>(n).fill(c)), -1]);
  const dim = 8;
  const features = new Float32Array(labels.length * dim);
  labels.forEach((l, i) => {
    for (let d = 0; d < dim; d++) features[i * dim + d] = (d === Math.max(l, 0) * 2 ? 5 : 0) + rng.normal() * 0.3;
  });
  const groups = Int32Array.from(labels, (_, i) => i % 2);
  return { features, dim, labels, classNames: CLASSES, groups, groupNames: ['slide-a', 'slide-b'], groupTitle: 'slide', seed: 3, epochs: 60, ...extra };
}

const hex = (img: RgbImage, x: number, y: number) => {
  const i = (Math.round(y) * img.width + Math.round(x)) * 3;
  return `#${Array.from(img.pixels.subarray(i, i + 3), (v) => v.toString(16).padStart(2, '0')).join('')}`;
};

/** Circles of the SVG in document order: fill and centre. */
const circles = (svg: string) => [...svg.matchAll(/<circle cx="([\d.]+)" cy="([\d.]+)" r="3" fill="(#[0-9a-f]{6})"/g)].map((m) => ({ x: Number(m[1]), y: Number(m[2]), fill: m[3]! }));
const swatches = (svg: string) => [...svg.matchAll(/<rect x="([\d.]+)" y="([\d.]+)" width="11" height="11" fill="(#[0-9a-f]{6})"/g)].map((m) => ({ x: Number(m[1]), y: Number(m[2]), fill: m[3]! }));

describe('umapChart', () => {
  it('draws each class in its colour, with a legend of names, colours and counts, seeded', async () => {
    const r = umapChart(input());
    checkXml(r.chart.svg);
    expect(r.classColors).toEqual(categoricalColors(3));
    expect(new Set(r.classColors).size).toBe(3);
    const points = circles(r.chart.svg);
    const n = COUNTS.reduce((a, b) => a + b) + 1;
    expect(points).toHaveLength(2 * n);
    const byClass = r.classColors.map((c) => points.slice(0, n).filter((p) => p.fill === c).length);
    expect(byClass).toEqual(COUNTS);
    expect(points.slice(0, n).filter((p) => p.fill === '#bbbbbb')).toHaveLength(1);
    for (const [c, name] of ['tumour (18)', 'stroma (12)', 'lymph &amp; &lt;debris&gt; (6)'].entries()) expect(r.chart.svg).toContain(`${name}</text>`);
    // Same seed, same chart; another seed, another layout.
    expect(umapChart(input()).chart.svg).toBe(r.chart.svg);
    expect(umapChart(input({ seed: 4 })).positions).not.toEqual(r.positions);

    const png = decodePng(await svgToPng(r.chart.svg));
    const legend = swatches(r.chart.svg);
    expect(legend.map((s) => s.fill)).toEqual([...r.classColors, ...r.groupColors]);
    for (const s of legend) expect(hex(png, s.x + 5, s.y + 5)).toBe(s.fill);
    // Every class's colour is in the plot's pixels, at the centres of its points not covered by later ones.
    for (const [c, colour] of r.classColors.entries()) {
      const own = points.slice(0, n).filter((p) => p.fill === colour);
      const visible = own.filter((p) => hex(png, p.x, p.y) === colour);
      expect(visible.length, CLASSES[c]).toBeGreaterThan(own.length / 2);
    }
  });

  it('places the classes apart as the features are', () => {
    const r = umapChart(input({ groups: undefined, groupNames: undefined }));
    const at = (i: number) => [r.positions[2 * i]!, r.positions[2 * i + 1]!] as const;
    const labels = input().labels;
    const centre = (c: number) => {
      const idx = [...labels.keys()].filter((i) => labels[i] === c);
      return [0, 1].map((d) => idx.reduce((s, i) => s + at(i)[d]!, 0) / idx.length);
    };
    const spread = (c: number) => {
      const m = centre(c);
      const idx = [...labels.keys()].filter((i) => labels[i] === c);
      return idx.reduce((s, i) => s + Math.hypot(at(i)[0] - m[0]!, at(i)[1] - m[1]!), 0) / idx.length;
    };
    for (let a = 0; a < 3; a++) {
      for (let b = a + 1; b < 3; b++) {
        const gap = Math.hypot(centre(a)[0]! - centre(b)[0]!, centre(a)[1]! - centre(b)[1]!);
        expect(gap).toBeGreaterThan(2 * Math.max(spread(a), spread(b)));
      }
    }
    expect(r.groupColors).toEqual([]);
    expect(circles(r.chart.svg)).toHaveLength(37);
    expect(r.chart.svg).not.toContain('coloured by slide');
  });

  it('a second panel by group (slide); a seeded sample beyond maxPoints, counted in the legend', async () => {
    const r = umapChart(input({ maxPoints: 20 }));
    expect(r.rows).toHaveLength(20);
    expect(r.chart.svg).toContain('coloured by slide');
    expect(r.chart.svg).toContain('20 of 37 points (seeded sample)');
    const points = circles(r.chart.svg);
    const groups = input().groups!;
    const second = points.slice(20);
    expect(r.groupColors.map((c) => second.filter((p) => p.fill === c).length)).toEqual([0, 1].map((g) => Array.from(r.rows).filter((row) => groups[row] === g).length));
    const counts = [...r.chart.svg.matchAll(/\((\d+)\)<\/text>/g)].map((m) => Number(m[1]));
    const classCounts = counts.slice(0, counts.length - 2);
    expect(classCounts.reduce((a, b) => a + b)).toBe(20 - Array.from(r.rows).filter((row) => input().labels[row] === -1).length);
    expect(counts.slice(-2).reduce((a, b) => a + b)).toBe(20);
    const png = decodePng(await svgToPng(r.chart.svg));
    for (const s of swatches(r.chart.svg).slice(-2)) expect(hex(png, s.x + 5, s.y + 5)).toBe(s.fill);
  });

  it('colours stay distinct beyond the palette', () => {
    const colours = categoricalColors(40);
    expect(new Set(colours).size).toBe(40);
    for (const c of colours) expect(c).toMatch(/^#[0-9a-f]{6}$/);
  });
});
