/**
 * What an evaluation's features look like, drawn from the features `eval` extracted anyway: the UMAP
 * of the test features (coloured by class; a second panel by slide or group where the data has them),
 * the nearest-neighbour grid (8 test queries spread over the classes, each with its 5 nearest
 * training images by cosine similarity), and the embedding projector's inputs (the same rows'
 * features, their metadata and images).
 *
 * Where the test split is a single group (leave-one-group-out holds one slide out), a panel by group
 * would show one colour: the UMAP and the projector then take every labelled item, the probes'
 * training data and the test split, so the slides can be told apart.
 */
import { basename, extname, join } from 'node:path';
import type { Config } from '../config/schema.js';
import { BadItems } from '../data/bad_items.js';
import type { ImageDataset } from '../data/dataset.js';
import { HAM10000_METADATA, readHamMetadata } from '../data/ham10000.js';
import { neighbourGrid, type NeighbourGrid } from '../report/neighbours.js';
import { datasetMetadata, projectorLayout, type ProjectorEmbedding } from '../report/tensorboard/projector.js';
import { umapChart, type UmapResult } from '../report/umap.js';

/** The record files the report draws them from (beside record.json, see records.ts). */
export const UMAP_FILE = 'umap.svg';
export const NEIGHBOURS_FILE = 'neighbours.svg';

export interface FeatureViewsInput {
  cfg: Pick<Config, 'seed' | 'data'>;
  dim: number;
  classNames: readonly string[];
  /** The probes' training data (the neighbours' bank), its split name and features. */
  pool: ImageDataset;
  poolSplit: string;
  poolFeatures: Float32Array;
  test: ImageDataset;
  testFeatures: Float32Array;
}

export interface FeatureViews {
  umap: UmapResult;
  neighbours: NeighbourGrid;
  /** The rows the UMAP drew from, for the projector (no name yet: the writer gives it one). */
  projector: Omit<ProjectorEmbedding, 'name'>;
}

/** What a data kind's groups are, in the legend and the metadata column. */
export function groupTitle(kind: Config['data']['kind']): string {
  return kind === 'patches' || kind === 'synthetic_slides' ? 'slide' : 'group';
}

const groupCount = (ds: ImageDataset) => (ds.groups ? new Set(ds.groups).size : 0);

/** The rows to plot: the test split, or the pool and the test split where only that shows the groups. */
interface PlotRows {
  title: string;
  features: Float32Array;
  labels: Int32Array;
  groups?: Int32Array;
  groupNames?: readonly string[];
  images: Pick<ImageDataset, 'height' | 'width' | 'image'>;
  metadata: Array<{ name: string; values: Array<string | number> }>;
}

/** Columns of two datasets' metadata, one after the other (a column missing on one side is blank there). */
function concatColumns(a: ReturnType<typeof datasetMetadata>, aSize: number, b: ReturnType<typeof datasetMetadata>, bSize: number): ReturnType<typeof datasetMetadata> {
  const names = [...new Set([...a.map((c) => c.name), ...b.map((c) => c.name)])];
  const valuesOf = (cols: ReturnType<typeof datasetMetadata>, name: string, n: number) => cols.find((c) => c.name === name)?.values ?? new Array<string>(n).fill('');
  return names.map((name) => ({ name, values: [...valuesOf(a, name, aSize), ...valuesOf(b, name, bSize)] }));
}

function plotRows(input: FeatureViewsInput): PlotRows {
  const { pool, test } = input;
  const title = groupTitle(input.cfg.data.kind);
  const single = groupCount(test) < 2 && groupCount(pool) >= 2 && pool.groupNames !== undefined;
  if (!single) {
    return {
      title: 'UMAP of the test features',
      features: input.testFeatures,
      labels: test.labels,
      groups: test.groups,
      groupNames: test.groupNames,
      images: test,
      metadata: datasetMetadata(test, 'test', title),
    };
  }
  // Groups by name across both sides (the test split's held-out group among them).
  const names = [...new Set([...(pool.groupNames ?? []), ...(test.groupNames ?? [])])];
  const index = new Map(names.map((n, i) => [n, i]));
  const groupOf = (ds: ImageDataset, i: number) => (ds.groups && ds.groupNames ? index.get(ds.groupNames[ds.groups[i]!]!)! : -1);
  const features = new Float32Array(input.poolFeatures.length + input.testFeatures.length);
  features.set(input.poolFeatures);
  features.set(input.testFeatures, input.poolFeatures.length);
  return {
    title: `UMAP of the labelled features (${input.poolSplit === 'train' ? 'train' : 'the probes\' training data'} and test: the test split is one ${title})`,
    features,
    labels: Int32Array.from([...pool.labels, ...test.labels]),
    groups: Int32Array.from({ length: pool.size + test.size }, (_, i) => (i < pool.size ? groupOf(pool, i) : groupOf(test, i - pool.size))),
    groupNames: names,
    images: { height: test.height, width: test.width, image: (i: number) => (i < pool.size ? pool.image(i) : test.image(i - pool.size)) },
    metadata: concatColumns(datasetMetadata(pool, input.poolSplit, title), pool.size, datasetMetadata(test, 'test', title), test.size),
  };
}

/** HAM10000: each image's lesion id from the metadata CSV, for the projector's metadata. */
async function hamLesions(root: string, sources: readonly (string | number)[]): Promise<string[] | undefined> {
  try {
    const { rows } = await readHamMetadata(join(root, HAM10000_METADATA), new BadItems());
    const lesion = new Map(rows.map((r) => [r.imageId, r.lesionId]));
    return sources.map((s) => lesion.get(basename(String(s), extname(String(s)))) ?? '');
  } catch {
    return undefined; // the data loaded from this CSV a moment ago; without it the column is left out
  }
}

export async function featureViews(input: FeatureViewsInput): Promise<FeatureViews> {
  const { cfg, dim, classNames } = input;
  const rows = plotRows(input);
  const umap = umapChart({
    features: rows.features,
    dim,
    labels: rows.labels,
    classNames,
    groups: rows.groups,
    groupNames: rows.groupNames,
    groupTitle: groupTitle(cfg.data.kind),
    seed: cfg.seed,
    title: rows.title,
  });
  const neighbours = neighbourGrid({
    queries: { features: input.testFeatures, labels: input.test.labels, images: input.test },
    bank: { features: input.poolFeatures, labels: input.pool.labels, images: input.pool },
    dim,
    classNames,
    seed: cfg.seed,
  });
  const metadata = rows.metadata;
  const source = metadata.find((c) => c.name === 'source');
  if (cfg.data.kind === 'ham10000' && cfg.data.root && source) {
    const lesions = await hamLesions(cfg.data.root, source.values);
    if (lesions) metadata.splice(metadata.indexOf(source), 0, { name: 'lesion', values: lesions });
  }
  const count = rows.labels.length;
  return {
    umap,
    neighbours,
    projector: {
      features: rows.features,
      dim,
      metadata,
      images: rows.images,
      ...projectorLayout(count, dim, rows.images.height),
    },
  };
}

/** The files a record keeps of them (see records.ts): the charts' SVGs, from which the report draws its PNGs. */
export function featureViewFiles(views: FeatureViews): Record<string, string> {
  return { [UMAP_FILE]: views.umap.chart.svg, [NEIGHBOURS_FILE]: views.neighbours.chart.svg };
}
