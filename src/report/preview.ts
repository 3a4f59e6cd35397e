/**
 * `simtrip preview`: source images beside the augmented views training draws from them, to judge an
 * augmentation by eye (does the jitter wash out the stain, does the crop miss the lesion?).
 *
 * The views are training's own, not look-alikes: the first N items of the epoch's shuffled order
 * (epochBatches), the items each view reads (batchViews: SimTriplet's neighbour is the neighbour
 * training samples for that item and epoch), the method's augmentation (METHOD_VIEWS) and
 * augmentViews with the same (seed, epoch, item, view) streams. Each view is shown as the network
 * receives it, de-normalised to pixels.
 */
import { basename, dirname, extname, join } from 'node:path';
import type { AugmentConfig, Config } from '../config/schema.js';
import { augmentViews, blurProbability, thumbnail, viewPixels, type Normalization } from '../data/augment.js';
import type { DataSplits, ImageDataset } from '../data/dataset.js';
import { epochBatches, loadDataSplits } from '../data/index.js';
import { needsNeighbours } from '../method/method.js';
import { batchViews, METHOD_VIEWS } from '../method/views.js';
import { normalizationFor } from '../model/build.js';
import { UserError } from '../util/errors.js';
import { writeChart } from './png.js';
import { tileSheet, type Tile, type TileSheet } from './tile_sheet.js';

export interface PreviewOptions {
  /** Items shown (rows). Default 16. */
  n?: number;
  /** Epoch whose draws are shown. Default 0, the first. */
  epoch?: number;
  /** Splits already loaded (tests); loaded from config.data otherwise. */
  data?: DataSplits;
  log?: (line: string) => void;
}

export interface Preview {
  sheet: TileSheet;
  /** The train items shown, in row order. */
  items: number[];
  /** Per view, the item of `source` each row's view was drawn from. */
  viewItems: number[][];
  /** The dataset the views index (neighbour views: the neighbour index's images). */
  source: ImageDataset;
  /** Columns: the sources first, then one per view. */
  sourceColumns: number;
  augment: AugmentConfig;
  normalization: Normalization;
  epoch: number;
}

const VIEW_NAMES: Record<string, readonly string[]> = {
  simsiam: ['view 1', 'view 2'],
  simtriplet: ['view 1 (anchor)', 'view 2 (neighbour)', 'view 3 (anchor)'],
  supervised: ['view'],
};

/** One line saying what the augmentation does, for the sheet's notes. */
export function describeAugment(a: AugmentConfig, side: number): string {
  const range = (r: readonly number[]) => `[${r.join(', ')}]`;
  const jitter = `jitter p ${a.jitter_prob} (brightness ${a.brightness}, contrast ${a.contrast}, saturation ${a.saturation}, hue ${a.hue})`;
  const blur = `blur p ${blurProbability(a, side)}${a.blur_prob === 'auto' ? ' (auto)' : ''} (sigma ${range(a.blur_sigma)})`;
  return `crop scale ${range(a.crop_scale)} ratio ${range(a.crop_ratio.map((r) => Number(r.toFixed(3))))}, ${jitter}, grayscale p ${a.grayscale_prob}, ${blur}, flip p ${a.flip_prob}`;
}

function itemLabel(ds: ImageDataset, item: number): string[] {
  const label = ds.labels[item] ?? -1;
  const lines = [`#${item}`];
  if (label >= 0 && ds.classNames[label] !== undefined) lines.push(ds.classNames[label]!);
  if (ds.groups && ds.groupNames) lines.push(ds.groupNames[ds.groups[item]!]!);
  return lines;
}

/** The preview sheet of `cfg`: what training with it would draw first (see the module comment). */
export async function augmentationPreview(cfg: Config, options: PreviewOptions = {}): Promise<Preview> {
  const n = options.n ?? 16;
  const epoch = options.epoch ?? 0;
  if (!Number.isInteger(n) || n < 1) throw new UserError(`--n: got ${n}, expected a whole number >= 1`);
  if (!Number.isInteger(epoch) || epoch < 0) throw new UserError(`--epoch: got ${epoch}, expected a whole number >= 0`);
  const data = options.data ?? (await loadDataSplits(cfg.data, cfg.seed, { log: options.log }));
  const recipe = METHOD_VIEWS[cfg.method.name];
  if (needsNeighbours(recipe) && !data.neighbours) {
    throw new UserError(`method.name '${cfg.method.name}' draws a view from each patch's spatial neighbour, which data.kind '${cfg.data.kind}' does not provide`);
  }
  const order = epochBatches(data.train.size, cfg.train.batch_size, cfg.seed, epoch).flatMap((b) => Array.from(b));
  const batch = Int32Array.from(order.slice(0, n));
  const { source, items } = batchViews(recipe, data, batch, cfg.seed, epoch);
  const side = cfg.data.image_size;
  const augment = recipe.augment(cfg.data.augment);
  const normalization = normalizationFor(cfg.model);
  const views = augmentViews(source, items, side, augment, normalization, { seed: cfg.seed, epoch });

  const neighbourView = recipe.viewSources.indexOf('neighbour');
  const columns = ['source', ...(neighbourView >= 0 ? ['neighbour'] : []), ...(VIEW_NAMES[cfg.method.name] ?? recipe.viewSources.map((_, v) => `view ${v + 1}`))];
  const sourceColumns = neighbourView >= 0 ? 2 : 1;
  const rows = Array.from(batch, (item, i) => {
    const tiles: Tile[] = [{ pixels: thumbnail(data.train, item, side), side }];
    if (neighbourView >= 0) tiles.push({ pixels: thumbnail(source, items[neighbourView]![i]!, side), side, caption: [`#${items[neighbourView]![i]}`] });
    views.forEach((v) => tiles.push({ pixels: viewPixels(v, i, side, normalization), side }));
    return { label: itemLabel(data.train, item), tiles };
  });
  const sheet = tileSheet({
    title: `Augmentation preview: ${cfg.name} (${cfg.method.name}, ${cfg.data.kind})`,
    columns,
    rows,
    notes: [
      `The first ${batch.length} items of epoch ${epoch} (seed ${cfg.seed}) and the views training draws from them, de-normalised (${normalization}); sources resized to ${side} px.`,
      describeAugment(augment, side) + (cfg.method.name === 'supervised' ? ' (supervised: crop and flip only)' : ''),
    ],
  });
  return {
    sheet,
    items: Array.from(batch),
    viewItems: items.map((v) => Array.from(v)),
    source,
    sourceColumns,
    augment,
    normalization,
    epoch,
  };
}

/** Default output: runs/preview-<name>.png, beside the run folders (not in one: no run exists yet). */
export function defaultPreviewPath(cfg: Config): string {
  return join('runs', `preview-${cfg.name}.png`);
}

/** Writes the preview as <out>.png (and its .svg); returns the path written. */
export async function writePreview(cfg: Config, out: string, options: PreviewOptions = {}): Promise<{ path: string; preview: Preview }> {
  const preview = await augmentationPreview(cfg, options);
  const name = basename(out, extname(out) === '.png' || extname(out) === '.svg' ? extname(out) : '');
  const path = await writeChart(dirname(out), name, preview.sheet.svg);
  return { path, preview };
}
