/**
 * `simtrip preview`: the PNG's tiles are, pixel for pixel, the views the training path draws for the
 * epoch's first items (checked against the trainer's own pieces: the built method's view sources and
 * augmentation, epochBatches, augmentViewsParallel), for every data kind; and they differ from the
 * sources exactly as the config says.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ConfigSchema, type Config } from '../../src/config/schema.js';
import { thumbnail } from '../../src/data/augment.js';
import { epochBatches, loadDataSplits } from '../../src/data/index.js';
import { augmentViewsParallel } from '../../src/data/parallel_augment.js';
import { writeSyntheticSlides } from '../../src/data/synthetic_slides.js';
import { buildSslModel } from '../../src/model/build.js';
import { batchViews } from '../../src/method/views.js';
import { augmentationPreview, writePreview, type Preview } from '../../src/report/preview.js';
import { decodePng, type RgbImage } from '../../src/report/tile_sheet.js';
import { runCli, resetExitCodeAfterEach } from '../cli/run_cli.js';
import { scratchDir, writeCifarBinary, writeHamFixture } from '../data/fixtures.js';
import { useCpuBackend } from '../helpers.js';

resetExitCodeAfterEach();
beforeAll(useCpuBackend);

const MEAN = [0.485, 0.456, 0.406];
const STD = [0.229, 0.224, 0.225];

/** A normalised float view back to 0..255, written out independently of src/data/augment.ts. */
function expectedPixels(view: Float32Array, row: number, side: number, norm: 'imagenet' | 'bit'): Uint8Array {
  const per = side * side * 3;
  return Uint8Array.from({ length: per }, (_, i) => {
    const x = view[row * per + i]!;
    const c = i % 3;
    const v = norm === 'bit' ? (x + 1) * 127.5 : (x * STD[c]! + MEAN[c]!) * 255;
    return Math.max(0, Math.min(255, Math.round(v)));
  });
}

/** Tile (row, column) of a rendered sheet, reduced back to side x side (one pixel per enlarged block). */
function tileOf(png: RgbImage, p: Preview, row: number, column: number, side: number): Uint8Array {
  const { x, y } = p.sheet.layout.tileAt(row, column);
  const s = p.sheet.layout.scale;
  const out = new Uint8Array(side * side * 3);
  for (let ty = 0; ty < side; ty++) {
    for (let tx = 0; tx < side; tx++) {
      // The block's last pixel: a whole block must hold the pixel, not only its first corner.
      const d = ((y + ty * s + s - 1) * png.width + x + tx * s + s - 1) * 3;
      out.set(png.pixels.subarray(d, d + 3), (ty * side + tx) * 3);
    }
  }
  return out;
}

/**
 * What training draws at step 0: the trainer's own pieces (the built method, epochBatches, batchViews,
 * augmentViewsParallel without workers) for the first n items of epoch 0.
 */
async function trainingViews(cfg: Config, n: number) {
  const data = await loadDataSplits(cfg.data, cfg.seed);
  const model = buildSslModel(cfg.model, cfg.method, cfg.seed, { numClasses: Math.max(2, data.train.classNames.length) });
  try {
    const order = epochBatches(data.train.size, cfg.train.batch_size, cfg.seed, 0).flatMap((b) => Array.from(b));
    const batch = Int32Array.from(order.slice(0, n));
    const { source, items } = batchViews(model.method, data, batch, cfg.seed, 0);
    const augment = model.method.augment?.(cfg.data.augment) ?? cfg.data.augment;
    const views = await augmentViewsParallel(source, items, cfg.data.image_size, augment, model.normalization, { seed: cfg.seed, epoch: 0 }, undefined);
    return { data, batch, items, views, normalization: model.normalization };
  } finally {
    model.store.dispose();
  }
}

function config(data: Record<string, unknown>, extra: Record<string, unknown> = {}): Config {
  return ConfigSchema.parse({
    name: 'preview-test',
    seed: 5,
    data: { cache_dir: join(scratchDir(), 'cache'), ...data },
    model: { arch: 'resnet18', stem: 'cifar', width: 4 },
    method: { name: 'simsiam', proj_dim: 8, pred_hidden: 4 },
    train: { batch_size: 4 },
    ...extra,
  });
}

/** Renders the preview and checks every tile against the training path; returns both for more checks. */
async function checkAgainstTraining(cfg: Config, n: number) {
  const out = join(scratchDir(), 'preview.png');
  const { path, preview } = await writePreview(cfg, out, { n });
  expect(path).toBe(out);
  const png = decodePng(await readFile(path));
  const side = cfg.data.image_size;
  const t = await trainingViews(cfg, n);
  expect(preview.items).toEqual(Array.from(t.batch));
  expect(preview.viewItems).toEqual(t.items.map((v) => Array.from(v)));
  t.batch.forEach((item, row) => {
    expect(tileOf(png, preview, row, 0, side)).toEqual(thumbnail(t.data.train, item, side));
    t.views.forEach((view, v) => {
      expect(tileOf(png, preview, row, preview.sourceColumns + v, side)).toEqual(expectedPixels(view, row, side, t.normalization));
    });
  });
  return { png, preview, training: t };
}

const NO_AUGMENT = { crop_scale: [1, 1], crop_ratio: [1, 1], jitter_prob: 0, grayscale_prob: 0, blur_prob: 0, flip_prob: 0 };

describe('preview: the views training draws, for every data kind', () => {
  it('synthetic: SimSiam, two views per item', async () => {
    const cfg = config({ kind: 'synthetic', image_size: 16, synthetic: { train_size: 24, test_size: 8, size: 16 } });
    const { preview } = await checkAgainstTraining(cfg, 5);
    expect(preview.viewItems).toHaveLength(2);
  });

  it('synthetic with a BiT model: views de-normalised from [-1, 1]', async () => {
    const cfg = config({ kind: 'synthetic', image_size: 16, synthetic: { train_size: 12, test_size: 4, size: 16 } }, { model: { arch: 'bit-r50x1', width: 4 } });
    const { preview } = await checkAgainstTraining(cfg, 3);
    expect(preview.normalization).toBe('bit');
  });

  it('cifar10: the binary batches', async () => {
    const root = join(scratchDir(), 'cifar-10-batches-bin');
    await writeCifarBinary(root, 4, 4);
    await checkAgainstTraining(config({ kind: 'cifar10', root, image_size: 32 }), 4);
  });

  it('ham10000: the CSV and JPEGs, resized to data.image_size', async () => {
    const ham = await writeHamFixture({ lesionsPerClass: [2, 2, 2, 2, 2, 3, 2] });
    await checkAgainstTraining(config({ kind: 'ham10000', root: ham.root, image_size: 16 }), 4);
  });

  it('folder and patches: SimTriplet neighbours from the patch files', async () => {
    const slides = { train_slides: 2, eval_slides: 2, grid: 4, patch_size: 16, classes: 2, gap_fraction: 0.1 };
    const written = await writeSyntheticSlides(scratchDir(), ConfigSchema.parse({ data: { slides } }).data.slides, 3);
    await checkAgainstTraining(config({ kind: 'folder', root: written.labelledDir, image_size: 16 }), 3);
    const cfg = config(
      { kind: 'patches', root: written.patchesDir, image_size: 16, labelled: { root: written.labelledDir } },
      { method: { name: 'simtriplet', proj_dim: 8, pred_hidden: 4 } },
    );
    const { png, preview, training } = await checkAgainstTraining(cfg, 4);
    // The neighbour column: the patch training samples as each item's neighbour this epoch.
    training.batch.forEach((item, row) => {
      const neighbour = training.data.neighbours!.sample(item, cfg.seed, 0);
      expect(preview.viewItems[1]![row]).toBe(neighbour);
      expect(tileOf(png, preview, row, 1, 16)).toEqual(thumbnail(preview.source, neighbour, 16));
    });
  });

  it('synthetic_slides: SimTriplet, and supervised draws crop and flip only', async () => {
    const slides = { train_slides: 2, eval_slides: 2, grid: 4, patch_size: 16, classes: 2 };
    const cfg = config({ kind: 'synthetic_slides', image_size: 16, slides }, { method: { name: 'simtriplet', proj_dim: 8, pred_hidden: 4 } });
    const { preview } = await checkAgainstTraining(cfg, 4);
    expect(preview.sourceColumns).toBe(2);
    const sup = config(
      { kind: 'synthetic', image_size: 16, synthetic: { train_size: 12, test_size: 4, size: 16 }, augment: { jitter_prob: 1, grayscale_prob: 1 } },
      { method: { name: 'supervised' } },
    );
    const s = await checkAgainstTraining(sup, 3);
    expect([s.preview.augment.jitter_prob, s.preview.augment.grayscale_prob]).toEqual([0, 0]);
  });
});

describe('preview: views differ from the sources as the config says', () => {
  const data = { kind: 'synthetic', image_size: 16, synthetic: { train_size: 12, test_size: 4, size: 16 } };

  it('no augmentation: every view is its source; flip_prob 1: the source mirrored', async () => {
    const same = await checkAgainstTraining(config({ ...data, augment: NO_AUGMENT }), 3);
    const flipped = await checkAgainstTraining(config({ ...data, augment: { ...NO_AUGMENT, flip_prob: 1 } }), 3);
    for (let row = 0; row < 3; row++) {
      const src = tileOf(same.png, same.preview, row, 0, 16);
      expect(tileOf(same.png, same.preview, row, 1, 16)).toEqual(src);
      expect(tileOf(same.png, same.preview, row, 2, 16)).toEqual(src);
      const view = tileOf(flipped.png, flipped.preview, row, 1, 16);
      for (let y = 0; y < 16; y++) {
        for (let x = 0; x < 16; x++) {
          for (let c = 0; c < 3; c++) expect(view[(y * 16 + x) * 3 + c]).toBe(src[(y * 16 + 15 - x) * 3 + c]);
        }
      }
    }
  });

  it('grayscale_prob 1: grey views of colour sources', async () => {
    const { png, preview } = await checkAgainstTraining(config({ ...data, augment: { grayscale_prob: 1 } }), 3);
    const grey = (t: Uint8Array) => t.every((_, i) => i % 3 !== 0 || (t[i] === t[i + 1] && t[i] === t[i + 2]));
    for (let row = 0; row < 3; row++) {
      expect(grey(tileOf(png, preview, row, 0, 16))).toBe(false);
      expect(grey(tileOf(png, preview, row, 1, 16))).toBe(true);
      expect(grey(tileOf(png, preview, row, 2, 16))).toBe(true);
    }
  });
});

describe('simtrip preview', () => {
  it('writes the PNG and its SVG, prints the path and the seconds; --seed changes the draws', async () => {
    const dir = scratchDir();
    const cfgPath = join(dir, 'c.yaml');
    await writeFile(cfgPath, 'name: cli\ndata:\n  kind: synthetic\n  image_size: 16\n  synthetic: {train_size: 16, test_size: 4, size: 16}\ntrain: {batch_size: 4}\n');
    const a = await runCli('preview', '--config', cfgPath, '--n', '3', '--out', join(dir, 'a.png'));
    expect(a.code).toBe(0);
    expect(a.stdout).toMatch(new RegExp(`^${join(dir, 'a.png').replace(/[.]/g, '\\.')} \\(3 items x 2 views, epoch 0, seed 0; [0-9.]+ s\\)\\n$`));
    const b = await runCli('preview', '--config', cfgPath, '--n', '3', '--seed', '9', '--out', join(dir, 'b.png'));
    expect(b.stdout).toContain('seed 9');
    expect(decodePng(await readFile(join(dir, 'a.png'))).pixels).not.toEqual(decodePng(await readFile(join(dir, 'b.png'))).pixels);
    expect(await readFile(join(dir, 'a.svg'), 'utf8')).toContain('<svg');
    const bad = await runCli('preview', '--config', cfgPath, '--n', 'lots');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("--n: got 'lots', expected a whole number");
  });

  it('refuses SimTriplet on data without neighbours, naming the method and the data kind', async () => {
    const cfg = config({ kind: 'synthetic', image_size: 16, synthetic: { train_size: 8, test_size: 4, size: 16 } }, { method: { name: 'simtriplet' } });
    await expect(augmentationPreview(cfg, { n: 2 })).rejects.toThrow(/method.name 'simtriplet' .*data.kind 'synthetic'/);
  });
});
