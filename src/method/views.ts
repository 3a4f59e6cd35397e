/**
 * What a method's batches are made of, known from the method's name alone: the source of each view
 * (the item or a spatial neighbour) and the augmentation it trains with. The trainer reads it through
 * the built method; `simtrip preview` reads it here, so drawing the views never needs a model.
 */
import type { AugmentConfig, MethodConfig } from '../config/schema.js';
import type { DataSplits, ImageDataset } from '../data/dataset.js';
import type { TrainMethod, ViewSource } from './method.js';
import { needsNeighbours } from './method.js';

export interface ViewRecipe {
  /** One entry per view, in the order the method's step takes them. */
  readonly viewSources: readonly ViewSource[];
  /** The augmentation the method trains with, from data.augment. */
  augment(cfg: AugmentConfig): AugmentConfig;
}

const asConfigured = (cfg: AugmentConfig): AugmentConfig => cfg;

export const METHOD_VIEWS: Record<MethodConfig['name'], ViewRecipe> = {
  simsiam: { viewSources: ['item', 'item'], augment: asConfigured },
  // x1 anchor, x2 neighbour, x3 second anchor view.
  simtriplet: { viewSources: ['item', 'neighbour', 'item'], augment: asConfigured },
  // BiT-HyperRule: crop and flip only, whatever data.augment says about colour (see supervised.ts).
  supervised: { viewSources: ['item'], augment: (cfg) => ({ ...cfg, jitter_prob: 0, grayscale_prob: 0, blur_prob: 0 }) },
};

/**
 * The items each view of a batch is drawn from, and the dataset they index: neighbour views read
 * `neighbours.images`, whose first train.size items are the train items themselves.
 */
export function batchViews(
  method: Pick<TrainMethod, 'viewSources'>,
  data: DataSplits,
  batch: Int32Array,
  seed: number,
  epoch: number,
): { source: ImageDataset; items: Int32Array[] } {
  if (!needsNeighbours(method)) return { source: data.train, items: method.viewSources.map(() => batch) };
  const nb = data.neighbours!;
  const neighbourItems = batch.map((i) => nb.sample(i, seed, epoch));
  return { source: nb.images, items: method.viewSources.map((s) => (s === 'neighbour' ? neighbourItems : batch)) };
}
