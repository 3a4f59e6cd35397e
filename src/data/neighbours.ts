/**
 * Neighbour lists for SimTriplet, stored compactly (one offsets array and one flat target array,
 * like a sparse matrix's rows), and the per-epoch draw of one neighbour.
 */
import { Rng } from '../util/rng.js';
import type { ImageDataset, NeighbourIndex } from './dataset.js';

export class ListNeighbourIndex implements NeighbourIndex {
  readonly isolated: number;

  /**
   * Item i's neighbours are targets[offsets[i] .. offsets[i + 1]), indices into `images`;
   * offsets has one entry more than there are items.
   */
  constructor(
    private readonly offsets: Int32Array,
    private readonly targets: Int32Array,
    readonly images: ImageDataset,
  ) {
    if (offsets[offsets.length - 1] !== targets.length) throw new Error('neighbour offsets do not end at the target count');
    const items = offsets.length - 1;
    if (items > images.size) throw new Error(`${items} items with neighbours, but only ${images.size} images`);
    for (const t of targets) {
      if (t < 0 || t >= images.size) throw new RangeError(`neighbour ${t} out of range [0, ${images.size})`);
    }
    let isolated = 0;
    for (let i = 0; i < items; i++) if (offsets[i + 1] === offsets[i]) isolated++;
    this.isolated = isolated;
  }

  /** Number of items (anchors) the index covers. */
  get size(): number {
    return this.offsets.length - 1;
  }

  count(index: number): number {
    this.check(index);
    return this.offsets[index + 1]! - this.offsets[index]!;
  }

  /** All neighbours of an item (a view; do not modify). */
  neighboursOf(index: number): Int32Array {
    this.check(index);
    return this.targets.subarray(this.offsets[index]!, this.offsets[index + 1]!);
  }

  /** One neighbour, uniformly among the existing ones, the same for the same (seed, epoch, item). */
  sample(index: number, seed: number, epoch: number): number {
    const list = this.neighboursOf(index);
    if (list.length === 0) return index;
    return list[new Rng(seed, 'neighbour', epoch, index).int(list.length)]!;
  }

  private check(index: number): void {
    if (!Number.isInteger(index) || index < 0 || index >= this.size) throw new RangeError(`item ${index} out of range [0, ${this.size})`);
  }
}

/** Packs per-item neighbour lists into the offsets/targets form. */
export function packNeighbours(lists: readonly (readonly number[])[]): { offsets: Int32Array; targets: Int32Array } {
  const offsets = new Int32Array(lists.length + 1);
  lists.forEach((l, i) => (offsets[i + 1] = offsets[i]! + l.length));
  const targets = new Int32Array(offsets[lists.length]!);
  lists.forEach((l, i) => targets.set(l, offsets[i]!));
  return { offsets, targets };
}

/** Where an item sits: slide index and grid cell. */
export interface GridPosition {
  slide: number;
  x: number;
  y: number;
}

const RING = [
  [-1, -1],
  [0, -1],
  [1, -1],
  [1, 0],
  [1, 1],
  [0, 1],
  [-1, 1],
  [-1, 0],
] as const;

/**
 * Neighbours on a grid: the items of the same slide at the 8 adjacent cells (ring order starting top
 * left), when they exist. Two items on one cell are a caller error (the loaders report duplicates
 * before getting here).
 */
export function gridNeighbourLists(positions: readonly GridPosition[]): number[][] {
  const key = (slide: number, x: number, y: number) => `${slide}:${x}:${y}`;
  const at = new Map<string, number>();
  positions.forEach((p, i) => {
    const k = key(p.slide, p.x, p.y);
    if (at.has(k)) throw new Error(`two items at slide ${p.slide} cell (${p.x}, ${p.y}): ${at.get(k)} and ${i}`);
    at.set(k, i);
  });
  return positions.map((p) => {
    const list: number[] = [];
    for (const [dx, dy] of RING) {
      const j = at.get(key(p.slide, p.x + dx, p.y + dy));
      if (j !== undefined) list.push(j);
    }
    return list;
  });
}

/** The grid neighbour index over `images` (item i at positions[i]). */
export function gridNeighbourIndex(positions: readonly GridPosition[], images: ImageDataset): ListNeighbourIndex {
  const { offsets, targets } = packNeighbours(gridNeighbourLists(positions));
  return new ListNeighbourIndex(offsets, targets, images);
}
