// helpers first: it loads tfjs-core before src/engine/tf.ts (see linear_probe.test.ts).
import { useCpuBackend } from '../helpers.js';
/**
 * eval's UMAP, neighbour grid and projector inputs for every data kind (synthetic, CIFAR-10,
 * HAM10000, labelled folders, pathology patches, generated slides), from the data loaded as eval
 * loads it: the UMAP's points and legend per class equal the plotted items' class counts (and per
 * slide in a second panel where the data has slides), the legend's swatches are the class colours in
 * the pixels, the grid's queries and neighbours are the test and training images themselves, and the
 * projector's metadata has the columns the data can give.
 */
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ConfigSchema, type Config } from '../../src/config/schema.js';
import { thumbnail } from '../../src/data/augment.js';
import type { ImageDataset } from '../../src/data/dataset.js';
import { loadDataSplits } from '../../src/data/index.js';
import { writeSyntheticSlides } from '../../src/data/synthetic_slides.js';
import { evaluate, type EvalReport } from '../../src/eval/evaluate.js';
import type { FeatureViews } from '../../src/eval/feature_views.js';
import { svgToPng } from '../../src/report/png.js';
import { decodePng, type RgbImage } from '../../src/report/tile_sheet.js';
import { scratchDir, writeCifarBinary, writeHamFixture } from '../data/fixtures.js';

beforeAll(useCpuBackend);

function config(data: Record<string, unknown>): Config {
  return ConfigSchema.parse({
    name: 'views-test',
    seed: 4,
    data: { cache_dir: join(scratchDir(), 'cache'), image_size: 16, ...data },
    model: { arch: 'resnet18', stem: 'cifar', width: 4 },
    eval: { batch_size: 32, knn: { k: 5 } },
  });
}

const hex = (img: RgbImage, x: number, y: number) => {
  const i = (Math.round(y) * img.width + Math.round(x)) * 3;
  return `#${Array.from(img.pixels.subarray(i, i + 3), (v) => v.toString(16).padStart(2, '0')).join('')}`;
};
const circles = (svg: string) => [...svg.matchAll(/<circle cx="[\d.]+" cy="[\d.]+" r="3" fill="(#[0-9a-f]{6})"/g)].map((m) => m[1]!);
const swatches = (svg: string) => [...svg.matchAll(/<rect x="([\d.]+)" y="([\d.]+)" width="11" height="11" fill="(#[0-9a-f]{6})"/g)].map((m) => ({ x: Number(m[1]), y: Number(m[2]), fill: m[3]! }));
const countsOf = (values: ArrayLike<number>, n: number) => Array.from({ length: n }, (_, c) => Array.from(values).filter((v) => v === c).length);

interface Expect {
  /** The UMAP plots the probes' training data too (the test split is one slide). */
  withPool?: boolean;
  /** Title of the second panel's groups; absent: one panel. */
  groups?: string;
  columns: string[];
}

/** Evaluates (kNN) with views, then checks them against the data eval loaded. */
async function checkViews(cfg: Config, want: Expect): Promise<{ views: FeatureViews; report: EvalReport }> {
  const data = await loadDataSplits(cfg.data, cfg.seed);
  const report = await evaluate({ config: cfg, data, linear: false, knn: true, views: true, engine: 'cpu', log: () => undefined });
  const views = report.views!;
  const pool: ImageDataset = data.probeTrain ?? data.train;
  const test = data.test;
  const classes = pool.classNames.length;

  // UMAP: one point per plotted item, in its class's colour; the legend gives each class's count.
  const labels = want.withPool ? [...pool.labels, ...test.labels] : Array.from(test.labels);
  const n = labels.length;
  const { umap } = views;
  const points = circles(umap.chart.svg);
  expect(points).toHaveLength(want.groups ? 2 * n : n);
  expect(umap.classColors.map((c) => points.slice(0, n).filter((p) => p === c).length)).toEqual(countsOf(labels, classes));
  countsOf(labels, classes).forEach((count, c) => {
    if (count > 0) expect(umap.chart.svg).toContain(`${pool.classNames[c]} (${count})</text>`);
  });
  if (want.groups) {
    expect(umap.chart.svg).toContain(`coloured by ${want.groups}</text>`);
    const groupsOf = (ds: ImageDataset) => Array.from(ds.groups!, (g) => ds.groupNames![g]!);
    const names = want.withPool ? [...groupsOf(pool), ...groupsOf(test)] : groupsOf(test);
    const distinct = [...new Set(names)];
    expect(distinct.length).toBeGreaterThanOrEqual(2);
    for (const g of distinct) expect(umap.chart.svg).toContain(`${g} (${names.filter((x) => x === g).length})</text>`);
  } else {
    expect(umap.groupColors).toEqual([]);
  }
  const png = decodePng(await svgToPng(umap.chart.svg));
  for (const s of swatches(umap.chart.svg)) expect(hex(png, s.x + 5, s.y + 5)).toBe(s.fill);

  // The neighbour grid: up to 8 labelled test images, each beside its 5 nearest training images.
  const grid = views.neighbours;
  const labelledTest = Array.from(test.labels).filter((l) => l >= 0).length;
  expect(grid.queries).toHaveLength(Math.min(8, labelledTest));
  for (const row of grid.neighbours) expect(row).toHaveLength(Math.min(5, pool.size));
  const gridPng = decodePng(await svgToPng(grid.chart.svg));
  const { tileAt, scale } = grid.sheet.layout;
  const side = Math.min(64, test.height);
  const pixelAt = (t: Uint8Array, x: number, y: number) => `#${Array.from(t.subarray((y * side + x) * 3, (y * side + x) * 3 + 3), (v) => v.toString(16).padStart(2, '0')).join('')}`;
  grid.queries.forEach((q, r) => {
    const tiles: Array<[Uint8Array, number]> = [[thumbnail(test, q, side), 0], [thumbnail(pool, grid.neighbours[r]![0]!.index, side), 1]];
    for (const [t, column] of tiles) {
      const at = tileAt(r, column);
      for (const [x, y] of [[0, 0], [side >> 1, 3], [side - 1, side - 1]] as const) expect(hex(gridPng, at.x + x * scale, at.y + y * scale)).toBe(pixelAt(t, x, y));
    }
  });

  // The projector: the UMAP's rows, with the metadata columns the data has.
  expect(views.projector.features.length).toBe(n * report.feature_dim);
  expect(views.projector.metadata!.map((c) => c.name)).toEqual(want.columns);
  expect(views.projector.metadata!.find((c) => c.name === 'class')!.values).toEqual(labels.map((l) => pool.classNames[l] ?? 'unlabelled'));
  return { views, report };
}

describe('eval draws the UMAP and the neighbour grid for every data kind', () => {
  it('synthetic', async () => {
    await checkViews(config({ kind: 'synthetic', synthetic: { train_size: 40, test_size: 24, size: 16 } }), { columns: ['label', 'class', 'split'] });
  });

  it('cifar10 (the binary batches)', async () => {
    const root = join(scratchDir(), 'cifar-10-batches-bin');
    await writeCifarBinary(root, 6, 20);
    await checkViews(config({ kind: 'cifar10', root, image_size: 32 }), { columns: ['label', 'class', 'split'] });
  });

  it('ham10000: the lesion of each image in the projector\'s metadata', async () => {
    const ham = await writeHamFixture({ lesionsPerClass: [3, 3, 3, 3, 3, 6, 3] });
    const { views } = await checkViews(config({ kind: 'ham10000', root: ham.root, split: { train: 0.5, val: 0.2, test: 0.3 } }), {
      columns: ['label', 'class', 'lesion', 'source', 'split'],
    });
    const meta = views.projector.metadata!;
    const sources = meta.find((c) => c.name === 'source')!.values;
    const lesions = meta.find((c) => c.name === 'lesion')!.values;
    expect(sources.length).toBeGreaterThan(0);
    sources.forEach((s, i) => expect(lesions[i]).toBe(ham.lesionOf.get(String(s).replace(/\.jpg$/, ''))));
  });

  describe('pathology', () => {
    let slides: { patchesDir: string; labelledDir: string };
    const slideCfg = { train_slides: 2, eval_slides: 3, grid: 5, patch_size: 16, classes: 3, gap_fraction: 0.1 };

    beforeAll(async () => {
      slides = await writeSyntheticSlides(scratchDir(), ConfigSchema.parse({ data: { slides: slideCfg } }).data.slides, 3);
    });

    it('folder: the held-out group is the test split, so the UMAP shows every labelled item by group', async () => {
      await checkViews(config({ kind: 'folder', root: slides.labelledDir }), { withPool: true, groups: 'group', columns: ['label', 'class', 'group', 'source', 'split'] });
    });

    it('patches: neighbours from the labelled slides, a second panel by slide', async () => {
      const { views } = await checkViews(config({ kind: 'patches', root: slides.patchesDir, labelled: { root: slides.labelledDir } }), {
        withPool: true,
        groups: 'slide',
        columns: ['label', 'class', 'slide', 'source', 'split'],
      });
      expect(new Set(views.projector.metadata!.find((c) => c.name === 'split')!.values)).toEqual(new Set(['probe_train', 'test']));
      expect(views.umap.chart.title).toMatch(/the test split is one slide/);
    });

    it('synthetic_slides', async () => {
      await checkViews(config({ kind: 'synthetic_slides', slides: slideCfg }), { withPool: true, groups: 'slide', columns: ['label', 'class', 'slide', 'split'] });
    });
  });
});
