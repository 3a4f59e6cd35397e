/**
 * A dataset whose pixels stay in the decode cache (data.keep_images: disk): it holds one entry path
 * per item and reads the item's pixels from its entry whenever image(i) is called. This is how sets
 * too large for memory load: Node 20 caps one typed array at 4 GiB, and ~80,000 patches at 128 px
 * plus their neighbour files are several times that. Reading is synchronous because ImageDataset's
 * callers (augmentation, the worker pool's slices, embedding) are; a 128 px entry is a 48 KB read that
 * the page cache usually serves.
 */
import { readCachedImage } from './decode_cache.js';
import { StoredImageDataset, type DatasetExtras } from './dataset.js';

export class CachedImageDataset extends StoredImageDataset {
  declare readonly sources: readonly string[];

  /**
   * `entries[i]` is item i's cache entry (see cacheImages); `extras.sources` is required: the error for
   * an entry that went missing names the image it was decoded from.
   */
  constructor(
    readonly entries: readonly string[],
    height: number,
    width: number,
    labels: Int32Array,
    classNames: readonly string[],
    extras: DatasetExtras & { sources: readonly string[] },
  ) {
    super(height, width, labels, classNames, extras);
    if (height !== width) throw new Error(`cached images are square, got ${height}x${width}`);
    if (entries.length !== this.size) throw new Error(`${entries.length} cache entries for ${this.size} items`);
  }

  /** A fresh array with the item's pixels, read from its entry. */
  image(index: number): Uint8Array {
    this.checkIndex(index);
    return readCachedImage(this.entries[index]!, this.height, this.sources[index]!);
  }

  /** The items at `indices`, in that order; only the entry paths are copied. */
  select(indices: ArrayLike<number>): CachedImageDataset {
    const entries = Array.from({ length: indices.length }, (_, k) => this.entries[indices[k]!]!);
    const { labels, extras } = this.selectMetadata(indices);
    return new CachedImageDataset(entries, this.height, this.width, labels, this.classNames, { ...extras, sources: extras.sources! });
  }

  /** The first n items. */
  head(n: number): CachedImageDataset {
    const m = Math.min(n, this.size);
    const { labels, extras } = this.headMetadata(m);
    return new CachedImageDataset(this.entries.slice(0, m), this.height, this.width, labels, this.classNames, { ...extras, sources: extras.sources! });
  }
}
