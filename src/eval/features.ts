/**
 * Frozen-backbone features: global-average-pooled backbone outputs in inference mode (BatchNorm on
 * running statistics), the input of the kNN monitor, the linear probe and `simtrip embed`.
 */
import { tf } from '../engine/tf.js';
import { withGpuMemoryHint } from '../engine/out_of_memory.js';
import { preprocessEval, type Normalization } from '../data/augment.js';
import type { ImageDataset } from '../data/dataset.js';
import type { Backbone } from '../model/resnet.js';

export interface FeatureOptions {
  imageSize: number;
  normalization: Normalization;
  batchSize: number;
  /** Items to embed, in output order; all items when absent. */
  indices?: Int32Array;
  /** The config key of batchSize, named when a batch does not fit in GPU memory. */
  batchKey?: string;
  /** Called after each batch with the number of items done. */
  onProgress?: (done: number, total: number) => void;
}

/** Row-major [N x featureDim] features of the dataset's items. */
export function extractFeatures(backbone: Backbone, ds: ImageDataset, opts: FeatureOptions): Float32Array {
  const indices = opts.indices ?? Int32Array.from({ length: ds.size }, (_, i) => i);
  const n = indices.length;
  const dim = backbone.featureDim;
  const out = new Float32Array(n * dim);
  const side = opts.imageSize;
  for (let start = 0; start < n; start += opts.batchSize) {
    const idx = indices.subarray(start, Math.min(start + opts.batchSize, n));
    const pixels = preprocessEval(ds, idx, side, opts.normalization);
    const feats = withGpuMemoryHint(
      () => tf.tidy(() => backbone.features(tf.tensor4d(pixels, [idx.length, side, side, 3]), false)),
      opts.batchKey ?? 'eval.batch_size',
      opts.batchSize,
    );
    out.set(feats.dataSync(), start * dim);
    feats.dispose();
    opts.onProgress?.(start + idx.length, n);
  }
  return out;
}

/** The first `limit` item indices (kNN monitor and smoke evaluations cap the sets they embed). */
export function firstIndices(size: number, limit: number): Int32Array {
  return Int32Array.from({ length: Math.min(size, limit) }, (_, i) => i);
}
