/**
 * The 'tfjs' inference runtime: the training graph itself (backbone.features in inference mode) on
 * the active tfjs engine. Always available, and the reference every other runtime is checked against.
 */
import { tf } from '../engine/tf.js';
import { withGpuMemoryHint } from '../engine/out_of_memory.js';
import type { Backbone } from '../model/resnet.js';
import type { FeatureExtractor } from './extractor.js';

export interface TrainingGraphOptions {
  /** The config key of the batch size, named when a batch does not fit in GPU memory. */
  batchKey?: string;
}

/** Features of one batch through the training graph, synchronously (tensors freed before return). */
export function trainingGraphFeatures(backbone: Backbone, images: Float32Array, n: number, side: number, batchKey = 'eval.batch_size'): Float32Array {
  const feats = withGpuMemoryHint(() => tf.tidy(() => backbone.features(tf.tensor4d(images, [n, side, side, 3]), false)), batchKey, n);
  try {
    return feats.dataSync() as Float32Array;
  } finally {
    feats.dispose();
  }
}

export function createTrainingGraphExtractor(backbone: Backbone, imageSize: number, opts: TrainingGraphOptions = {}): FeatureExtractor {
  return {
    runtime: 'tfjs',
    description: `tfjs training graph on the '${tf.getBackend()}' backend`,
    featureDim: backbone.featureDim,
    imageSize,
    run: async (images, n) => trainingGraphFeatures(backbone, images, n, imageSize, opts.batchKey),
    dispose: () => {},
  };
}
