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
}

/**
 * Spatial neighbours of unlabelled patches (SimTriplet). `sample` draws one existing neighbour of an
 * item for an epoch, seeded by (seed, epoch, item); an item without neighbours returns itself (its
 * "neighbour view" is then a second augmentation of the same patch).
 */
export interface NeighbourIndex {
  /** Number of existing neighbours of an item (0..8). */
  count(index: number): number;
  sample(index: number, seed: number, epoch: number): number;
  /** Items with no neighbour at all. */
  readonly isolated: number;
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

/** A dataset backed by one contiguous uint8 buffer of N*H*W*3 bytes. */
export class ArrayImageDataset implements ImageDataset {
  readonly size: number;
  readonly groups?: Int32Array;
  readonly groupNames?: readonly string[];
  readonly sources?: readonly string[];
  private readonly stride: number;

  constructor(
    readonly pixels: Uint8Array,
    readonly height: number,
    readonly width: number,
    readonly labels: Int32Array,
    readonly classNames: readonly string[],
    extras: DatasetExtras = {},
  ) {
    this.stride = height * width * 3;
    this.size = labels.length;
    this.groups = extras.groups;
    this.groupNames = extras.groupNames;
    this.sources = extras.sources;
    if (this.groups && this.groups.length !== this.size) throw new Error(`groups has ${this.groups.length} entries for ${this.size} items`);
    if (pixels.length !== this.size * this.stride) {
      throw new Error(
        `pixel buffer holds ${pixels.length} bytes, expected ${this.size} x ${height}x${width}x3 = ${this.size * this.stride}`,
      );
    }
  }

  image(index: number): Uint8Array {
    if (index < 0 || index >= this.size) throw new RangeError(`image index ${index} out of range [0, ${this.size})`);
    return this.pixels.subarray(index * this.stride, (index + 1) * this.stride);
  }

  /** The first n items (data.limit). Shares the buffer. */
  head(n: number): ArrayImageDataset {
    const m = Math.min(n, this.size);
    return new ArrayImageDataset(
      this.pixels.subarray(0, m * this.stride),
      this.height,
      this.width,
      this.labels.subarray(0, m),
      this.classNames,
      { groups: this.groups?.subarray(0, m), groupNames: this.groupNames, sources: this.sources?.slice(0, m) },
    );
  }
}
