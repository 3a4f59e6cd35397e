/**
 * The nearest-neighbour grid: queries spread over the classes by seed, neighbours ranked by cosine
 * similarity (checked by brute force), and in the pixels the images themselves and a frame per
 * neighbour that is green for the query's class and red (with a cross) for another.
 */
import { describe, expect, it } from 'vitest';
import { thumbnail } from '../../src/data/augment.js';
import { ArrayImageDataset } from '../../src/data/dataset.js';
import { neighbourGrid, OTHER_CLASS, pickQueries, SAME_CLASS } from '../../src/report/neighbours.js';
import { svgToPng } from '../../src/report/png.js';
import { decodePng, type RgbImage } from '../../src/report/tile_sheet.js';
import { Rng } from '../../src/util/rng.js';
import { checkXml } from './svg_check.js';

const CLASSES = ['tumour', 'stroma', 'lymph'];
const DIM = 6;
const SIDE = 16;

/** Items of class c point along axis 2c, with noise; `as` overrides the direction (a mislabelled item). */
function side(labels: number[], seed: number, as: Record<number, number> = {}) {
  const rng = new Rng(seed);
  const features = new Float32Array(labels.length * DIM);
  labels.forEach((l, i) => {
    for (let d = 0; d < DIM; d++) features[i * DIM + d] = (d === 2 * (as[i] ?? l) ? 4 : 0) + rng.normal() * 0.5;
  });
  const pixels = Uint8Array.from({ length: labels.length * SIDE * SIDE * 3 }, () => rng.int(256));
  const images = new ArrayImageDataset(pixels, SIDE, SIDE, Int32Array.from(labels), CLASSES);
  return { features, labels: Int32Array.from(labels), images };
}

const hex = (img: RgbImage, x: number, y: number) => {
  const i = (y * img.width + x) * 3;
  return `#${Array.from(img.pixels.subarray(i, i + 3), (v) => v.toString(16).padStart(2, '0')).join('')}`;
};

describe('pickQueries', () => {
  it('spreads the queries over the classes, fixed by the seed', () => {
    const labels = Int32Array.from([0, 0, 0, 0, 0, 0, 1, 1, 2, -1, 2, 2]);
    const q = pickQueries(labels, 5, 1);
    expect(q).toEqual(pickQueries(labels, 5, 1));
    expect(new Set(q.slice(0, 3).map((i) => labels[i])).size).toBe(3);
    expect(new Set(q).size).toBe(5);
    expect(q.every((i) => labels[i]! >= 0)).toBe(true);
    expect(pickQueries(labels, 20, 1)).toHaveLength(11);
    expect(pickQueries(labels, 5, 2)).not.toEqual(q);
  });
});

describe('neighbourGrid', () => {
  // Bank: 4 per class; item 5 is labelled stroma but looks like tumour (its features point that way).
  const bank = side([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2], 1, { 5: 0 });
  const queries = side([0, 0, 1, 1, 2, 2], 2);

  it('ranks neighbours by cosine similarity, labels them, and frames and marks the wrong ones', async () => {
    const g = neighbourGrid({ queries, bank, dim: DIM, classNames: CLASSES, seed: 7, count: 4, k: 5 });
    checkXml(g.chart.svg);
    expect(g.queries).toHaveLength(4);
    expect(new Set(g.queries.slice(0, 3).map((q) => queries.labels[q])).size).toBe(3);
    // Brute-force cosine ranking.
    const unit = (x: Float32Array, i: number) => {
      const v = Array.from(x.subarray(i * DIM, (i + 1) * DIM));
      const n = Math.hypot(...v);
      return v.map((a) => a / n);
    };
    g.queries.forEach((q, r) => {
      const sims = Array.from({ length: 12 }, (_, j) => ({ j, s: unit(queries.features, q).reduce((a, v, d) => a + v * unit(bank.features, j)[d]!, 0) }));
      sims.sort((a, b) => b.s - a.s);
      expect(g.neighbours[r]!.map((n) => n.index)).toEqual(sims.slice(0, 5).map((x) => x.j));
      g.neighbours[r]!.forEach((n, k) => expect(n.similarity).toBeCloseTo(sims[k]!.s, 5));
    });
    // The mislabelled bank item is among a tumour query's neighbours: there, it is the wrong one.
    const tumourRow = g.queries.findIndex((q) => queries.labels[q] === 0);
    expect(g.neighbours[tumourRow]!.map((n) => n.index)).toContain(5);

    const png = decodePng(await svgToPng(g.chart.svg));
    const { tileAt, cell, scale } = g.sheet.layout;
    expect(cell).toBe(SIDE * scale);
    let wrong = 0;
    g.queries.forEach((q, r) => {
      // The query tile holds the query image, enlarged by whole pixels.
      const t = thumbnail(queries.images, q, SIDE);
      const at = tileAt(r, 0);
      for (const [x, y] of [[0, 0], [5, 9], [15, 15]] as const) {
        expect(hex(png, at.x + x * scale, at.y + y * scale)).toBe(`#${Array.from(t.subarray((y * SIDE + x) * 3, (y * SIDE + x) * 3 + 3), (v) => v.toString(16).padStart(2, '0')).join('')}`);
      }
      g.neighbours[r]!.forEach((n, k) => {
        const same = bank.labels[n.index] === queries.labels[q];
        const { x, y } = tileAt(r, k + 1);
        expect(hex(png, x - 3, y + Math.floor(cell / 2)), `row ${r} neighbour ${k + 1}`).toBe(same ? SAME_CLASS : OTHER_CLASS);
        expect(hex(png, x + cell + 2, y + Math.floor(cell / 2))).toBe(same ? SAME_CLASS : OTHER_CLASS);
        if (!same) wrong++;
      });
    });
    expect(wrong).toBeGreaterThan(0);
    // One cross per wrong neighbour, and each neighbour's class and similarity under it.
    expect([...g.chart.svg.matchAll(/>✗<\/text>/g)]).toHaveLength(wrong);
    expect(g.chart.svg).toContain(`cos ${g.neighbours[0]![0]!.similarity.toFixed(3)}</text>`);
    expect(g.chart.svg).toContain('>stroma</text>');
  });

  it('is fixed by the seed', () => {
    const a = neighbourGrid({ queries, bank, dim: DIM, classNames: CLASSES, seed: 7, count: 3 });
    expect(neighbourGrid({ queries, bank, dim: DIM, classNames: CLASSES, seed: 7, count: 3 }).chart.svg).toBe(a.chart.svg);
    expect(neighbourGrid({ queries, bank, dim: DIM, classNames: CLASSES, seed: 8, count: 3 }).queries).not.toEqual(a.queries);
  });
});
