/**
 * The contract between data sources and everything downstream.
 *
 * Images are uint8 RGB, height x width x 3, row-major (HWC). All images of one dataset share a size;
 * loaders that read variable-size images resize once at load time.
 */
export interface ImageDataset {
  /** Number of items. */
  readonly size: number;
  readonly height: number;
  readonly width: number;
  /** Class names in label order; empty for unlabelled data. */
  readonly classNames: readonly string[];
  /** Label of each item, -1 where unknown. */
  readonly labels: Int32Array;
  /** The item's pixels (HWC uint8, length height*width*3). May be a view: do not modify. */
  image(index: number): Uint8Array;
  /** Group (slide, patient) of each item for leave-one-group-out evaluation; absent when ungrouped. */
  readonly groups?: Int32Array;
  readonly groupNames?: readonly string[];
  /** Where each item came from (file path or id), for reports; absent for generated data. */
  readonly sources?: readonly string[];
  /**
   * Present on a dataset whose images are still arriving (a streamed load, src/data/streamed_load.ts):
   * resolves once items [0, end) can be read; rejects if the load failed.
   */
  whenLoaded?(end: number): Promise<void>;
}

/**
 * Spatial neighbours of unlabelled patches (SimTriplet). `sample` draws one existing neighbour of an
 * item for an epoch, seeded by (seed, epoch, item); an item without neighbours returns itself (its
 * "neighbour view" is then a second augmentation of the same patch).
 *
 * `sample` returns an index into `images`, whose first train.size items are the train items in the
 * same order (grid layouts: `images` is the train set itself). The released SimTriplet layout keeps
 * neighbour patches in files that are not anchors, so they follow the train items there. Read the
 * neighbour's pixels as `neighbours.images.image(neighbours.sample(i, seed, epoch))`.
 */
export interface NeighbourIndex {
  /** Number of existing neighbours of an item (0..8). */
  count(index: number): number;
  sample(index: number, seed: number, epoch: number): number;
  /** Items with no neighbour at all. */
  readonly isolated: number;
  /** What `sample` indexes into (see above). */
  readonly images: ImageDataset;
}

/** Train and test splits of one data source. */
export interface DataSplits {
  /** What SSL trains on (may be unlabelled, e.g. pathology patches). */
  train: ImageDataset;
  /** Labelled held-out data the probes and the kNN monitor report on. */
  test: ImageDataset;
  /** Validation split for model selection (HAM10000). */
  val?: ImageDataset;
  /**
   * Labelled data the probes and the kNN monitor fit on when `train` is unlabelled; `train` otherwise.
   * With groups, it is what leave-one-group-out cross-validation folds over.
   */
  probeTrain?: ImageDataset;
  /** Neighbours of the train items, for SimTriplet. */
  neighbours?: NeighbourIndex;
  /** Human-readable description for run headers, e.g. "cifar10 (50000 train / 10000 test)". */
  description: string;
}

/** Optional per-item annotations of a dataset. */
export interface DatasetExtras {
  groups?: Int32Array;
  groupNames?: readonly string[];
  sources?: readonly string[];
}

/** Labels and extras of some items of a dataset (what select and head carry over). */
export interface ItemMetadata {
  labels: Int32Array;
  extras: DatasetExtras;
}

/**
 * What the stored datasets share, whatever holds their pixels (one buffer in memory, or the decode
 * cache on disk): size, labels, class names, groups and sources, and how subsets carry them over.
 */
export abstract class StoredImageDataset implements ImageDataset {
  readonly size: number;
  readonly groups?: Int32Array;
  readonly groupNames?: readonly string[];
  readonly sources?: readonly string[];
  /** Bytes of one image. */
  protected readonly stride: number;

  constructor(
    readonly height: number,
    readonly width: number,
    readonly labels: Int32Array,
    readonly classNames: readonly string[],
    extras: DatasetExtras,
  ) {
    this.stride = height * width * 3;
    this.size = labels.length;
    this.groups = extras.groups;
    this.groupNames = extras.groupNames;
    this.sources = extras.sources;
    if (this.groups && this.groups.length !== this.size) throw new Error(`groups has ${this.groups.length} entries for ${this.size} items`);
    if (this.sources && this.sources.length !== this.size) throw new Error(`sources has ${this.sources.length} entries for ${this.size} items`);
  }

  abstract image(index: number): Uint8Array;
  /** The items at `indices`, in that order (see selectMetadata). */
  abstract select(indices: ArrayLike<number>): StoredImageDataset;
  /** The first n items (data.limit). */
  abstract head(n: number): StoredImageDataset;

  protected checkIndex(index: number): void {
    if (index < 0 || index >= this.size) throw new RangeError(`image index ${index} out of range [0, ${this.size})`);
  }

  /**
   * Labels, sources and groups of the items at `indices`. Groups are renumbered to the groups still
   * present (in their original order), so a subset's groupNames never name empty groups.
   */
  protected selectMetadata(indices: ArrayLike<number>): ItemMetadata {
    const n = indices.length;
    const labels = Int32Array.from({ length: n }, (_, k) => this.labels[indices[k]!]!);
    const extras: DatasetExtras = {};
    if (this.sources) extras.sources = Array.from({ length: n }, (_, k) => this.sources![indices[k]!]!);
    if (this.groups) {
      const present = [...new Set(Array.from({ length: n }, (_, k) => this.groups![indices[k]!]!))].sort((a, b) => a - b);
      const renumber = new Map(present.map((g, j) => [g, j]));
      extras.groups = Int32Array.from({ length: n }, (_, k) => renumber.get(this.groups![indices[k]!]!)!);
      if (this.groupNames) extras.groupNames = present.map((g) => this.groupNames![g]!);
    }
    return { labels, extras };
  }

  /** The metadata of the first m items, sharing the arrays. */
  protected headMetadata(m: number): ItemMetadata {
    return {
      labels: this.labels.subarray(0, m),
      extras: { groups: this.groups?.subarray(0, m), groupNames: this.groupNames, sources: this.sources?.slice(0, m) },
    };
  }
}

/** A dataset backed by one contiguous uint8 buffer of N*H*W*3 bytes. */
export class ArrayImageDataset extends StoredImageDataset {
  constructor(
    readonly pixels: Uint8Array,
    height: number,
    width: number,
    labels: Int32Array,
    classNames: readonly string[],
    extras: DatasetExtras = {},
  ) {
    super(height, width, labels, classNames, extras);
    if (pixels.length !== this.size * this.stride) {
      throw new Error(
        `pixel buffer holds ${pixels.length} bytes, expected ${this.size} x ${height}x${width}x3 = ${this.size * this.stride}`,
      );
    }
  }

  image(index: number): Uint8Array {
    this.checkIndex(index);
    return this.pixels.subarray(index * this.stride, (index + 1) * this.stride);
  }

  /** The items at `indices`, in that order, copied into a new buffer. */
  select(indices: ArrayLike<number>): ArrayImageDataset {
    const pixels = new Uint8Array(indices.length * this.stride);
    for (let k = 0; k < indices.length; k++) pixels.set(this.image(indices[k]!), k * this.stride);
    const { labels, extras } = this.selectMetadata(indices);
    return new ArrayImageDataset(pixels, this.height, this.width, labels, this.classNames, extras);
  }

  /** The first n items. Shares the buffer. */
  head(n: number): ArrayImageDataset {
    const m = Math.min(n, this.size);
    const { labels, extras } = this.headMetadata(m);
    return new ArrayImageDataset(this.pixels.subarray(0, m * this.stride), this.height, this.width, labels, this.classNames, extras);
  }
}

/** A dataset with no items (e.g. the test split of unlabelled patches without data.labelled). */
export function emptyDataset(height: number, width: number, classNames: readonly string[] = []): ArrayImageDataset {
  return new ArrayImageDataset(new Uint8Array(0), height, width, new Int32Array(0), classNames);
}
