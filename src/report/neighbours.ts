/**
 * The nearest-neighbour grid: a few test images (fixed by the seed, spread over the classes), each
 * beside its k nearest training images by cosine similarity of the encoder's features, as the kNN
 * probe ranks them. Every image is labelled; a neighbour of another class than its query is framed
 * red and marked with a cross, one of the same class framed green.
 */
import { thumbnail } from '../data/augment.js';
import type { ImageDataset } from '../data/dataset.js';
import { Rng } from '../util/rng.js';
import type { Chart } from './run_report.js';
import { tileSheet, type Tile, type TileSheet } from './tile_sheet.js';

export type Thumbnails = Pick<ImageDataset, 'height' | 'width' | 'image'>;

export interface FeatureSide {
  /** N x dim, row-major; row i is image i of `images`. */
  features: Float32Array;
  /** Class of each row; -1 for unlabelled. */
  labels: Int32Array;
  images: Thumbnails;
}

export interface NeighbourGridInput {
  queries: FeatureSide;
  bank: FeatureSide;
  dim: number;
  classNames: readonly string[];
  seed: number;
  /** Query rows. Default 8. */
  count?: number;
  /** Neighbours per query. Default 5. */
  k?: number;
  /** Thumbnail side at most (larger images are resized down). Default 64. */
  thumbnailSide?: number;
  title?: string;
}

export interface NeighbourGrid {
  chart: Chart;
  sheet: TileSheet;
  /** Query rows (into queries), and per query its neighbours (rows of the bank) and their similarities. */
  queries: number[];
  neighbours: Array<Array<{ index: number; similarity: number }>>;
}

export const SAME_CLASS = '#009e73';
export const OTHER_CLASS = '#d55e00';
const QUERY_FRAME = '#333333';
const UNLABELLED = '#999999';

/**
 * `count` labelled rows spread over the classes: the classes in a seeded order, one seeded row of each
 * per round, until there are enough (or no labelled row is left).
 */
export function pickQueries(labels: Int32Array, count: number, seed: number): number[] {
  const rng = new Rng(seed, 'neighbour-queries');
  const byClass = new Map<number, number[]>();
  labels.forEach((l, i) => {
    if (l >= 0) byClass.set(l, [...(byClass.get(l) ?? []), i]);
  });
  const classes = [...byClass.keys()].sort((a, b) => a - b);
  const order = Array.from(rng.permutation(classes.length), (k) => classes[k]!);
  const pools = new Map(order.map((c) => [c, Array.from(rng.permutation(byClass.get(c)!.length), (k) => byClass.get(c)![k]!)]));
  const picked: number[] = [];
  while (picked.length < count && [...pools.values()].some((p) => p.length > 0)) {
    for (const c of order) {
      const next = pools.get(c)!.shift();
      if (next !== undefined && picked.length < count) picked.push(next);
    }
  }
  return picked;
}

function unitRows(x: Float32Array, dim: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let r = 0; r * dim < x.length; r++) {
    let s = 0;
    for (let c = 0; c < dim; c++) s += x[r * dim + c]! ** 2;
    const inv = 1 / (Math.sqrt(s) || 1);
    for (let c = 0; c < dim; c++) out[r * dim + c] = x[r * dim + c]! * inv;
  }
  return out;
}

/** The k bank rows most cosine-similar to each query row, most similar first (ties: lower row first). */
export function nearestByCosine(queries: Float32Array, rows: readonly number[], bank: Float32Array, dim: number, k: number): Array<Array<{ index: number; similarity: number }>> {
  const b = unitRows(bank, dim);
  const size = bank.length / dim;
  return rows.map((q) => {
    const v = unitRows(queries.subarray(q * dim, (q + 1) * dim), dim);
    const sims: Array<{ index: number; similarity: number }> = [];
    for (let j = 0; j < size; j++) {
      let s = 0;
      for (let c = 0; c < dim; c++) s += v[c]! * b[j * dim + c]!;
      sims.push({ index: j, similarity: s });
    }
    sims.sort((x, y) => y.similarity - x.similarity || x.index - y.index);
    return sims.slice(0, k);
  });
}

const className = (names: readonly string[], label: number) => (label >= 0 ? (names[label] ?? `class ${label}`) : 'unlabelled');

/** Shortens a caption to what fits under a tile. */
function fit(text: string, chars: number): string {
  return text.length <= chars ? text : `${text.slice(0, Math.max(1, chars - 1))}…`;
}

export function neighbourGrid(input: NeighbourGridInput): NeighbourGrid {
  const { dim, classNames } = input;
  const k = input.k ?? 5;
  const queries = pickQueries(input.queries.labels, input.count ?? 8, input.seed);
  const neighbours = nearestByCosine(input.queries.features, queries, input.bank.features, dim, k);
  const side = Math.min(input.thumbnailSide ?? 64, input.queries.images.height, input.bank.images.height);
  const chars = Math.max(6, Math.floor(Math.max(side, 64) / 6.2));
  const rows = queries.map((q, r) => {
    const ql = input.queries.labels[q]!;
    const tiles: Tile[] = [{ pixels: thumbnail(input.queries.images, q, side), side, caption: [fit(className(classNames, ql), chars), `test #${q}`], frame: QUERY_FRAME }];
    for (const n of neighbours[r]!) {
      const nl = input.bank.labels[n.index]!;
      const wrong = nl >= 0 && nl !== ql;
      tiles.push({
        pixels: thumbnail(input.bank.images, n.index, side),
        side,
        caption: [fit(className(classNames, nl), chars), `cos ${n.similarity.toFixed(3)}`],
        frame: nl < 0 ? UNLABELLED : wrong ? OTHER_CLASS : SAME_CLASS,
        ...(wrong ? { mark: { text: '✗', color: OTHER_CLASS } } : {}),
      });
    }
    return { tiles };
  });
  const title = input.title ?? `Nearest training images of ${queries.length} test images (cosine similarity of the features)`;
  const sheet = tileSheet({
    title,
    columns: ['query', ...Array.from({ length: k }, (_, i) => `neighbour ${i + 1}`)],
    rows,
    minDisplay: 64,
    notes: [`Queries fixed by seed ${input.seed}, spread over the classes. Green frame: the query's class; red frame and cross: another class.`],
  });
  return { chart: { name: 'neighbours', title, svg: sheet.svg }, sheet, queries, neighbours };
}
