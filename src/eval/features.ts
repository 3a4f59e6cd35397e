/**
 * Frozen-backbone features: global-average-pooled backbone outputs in inference mode (BatchNorm on
 * running statistics), the input of the kNN monitor, the linear probe and `simtrip embed`, computed
 * by a FeatureExtractor (src/eval/inference.ts picks it).
 */
import { preprocessEval, type Normalization } from '../data/augment.js';
import type { ImageDataset } from '../data/dataset.js';
import type { FeatureExtractor } from './extractor.js';

export interface FeatureOptions {
  normalization: Normalization;
  batchSize: number;
  /** Items to embed, in output order; all items when absent. */
  indices?: Int32Array;
  /** Called after each batch with the number of items done. */
  onProgress?: (done: number, total: number) => void;
  /** Stops before the next batch once aborted (eval: a streamed load that failed), throwing its reason. */
  signal?: AbortSignal;
}

/**
 * Row-major [N x featureDim] features of the dataset's items. The next batch is preprocessed while
 * the extractor runs the current one (a native runtime computes off the main thread); on a streamed
 * dataset, each batch waits for its images.
 */
export async function extractFeatures(extractor: FeatureExtractor, ds: ImageDataset, opts: FeatureOptions): Promise<Float32Array> {
  const indices = opts.indices ?? Int32Array.from({ length: ds.size }, (_, i) => i);
  const n = indices.length;
  const dim = extractor.featureDim;
  const out = new Float32Array(n * dim);
  const batch = (start: number) => indices.subarray(start, Math.min(start + opts.batchSize, n));
  const pixels = async (idx: Int32Array) => {
    // A streamed dataset's images arrive in order: wait until the batch's last one has.
    if (ds.whenLoaded) await ds.whenLoaded(idx.reduce((m, i) => Math.max(m, i + 1), 0));
    return preprocessEval(ds, idx, extractor.imageSize, opts.normalization);
  };
  let next = n > 0 ? pixels(batch(0)) : undefined;
  for (let start = 0; start < n; start += opts.batchSize) {
    opts.signal?.throwIfAborted();
    const count = batch(start).length;
    const running = extractor.run(await next!, count);
    const after = start + opts.batchSize;
    next = after < n ? pixels(batch(after)) : undefined;
    // A failed load surfaces where its batch is awaited, not as an unhandled rejection meanwhile.
    next?.catch(() => undefined);
    out.set(await running, start * dim);
    opts.onProgress?.(start + count, n);
  }
  return out;
}

/** The first `limit` item indices (kNN monitor and smoke evaluations cap the sets they embed). */
export function firstIndices(size: number, limit: number): Int32Array {
  return Int32Array.from({ length: Math.min(size, limit) }, (_, i) => i);
}
