/**
 * `simtrip embed`: backbone features of every image in a folder (sorted by file name) as a float32
 * (or, with dtype float16, half-size float16) .npy [N, D], plus a .txt beside it naming the image of
 * each row.
 *
 * Images are decoded a batch at a time (resized so the shorter side is data.image_size, centre
 * crop), the next while the current one is encoded, so a large folder never sits in memory whole.
 */
import { basename } from 'node:path';
import type { Config } from '../config/schema.js';
import { ArrayImageDataset } from '../data/dataset.js';
import { writeFileAtomic } from '../io/atomic.js';
import { IMAGE_EXTENSIONS, listImages, readImageResized } from '../io/image.js';
import { writeNpy, type NpyWriteDtype } from '../io/npy.js';
import { createProgress, type Progress } from '../report/progress.js';
import { UserError } from '../util/errors.js';
import { loadEncoder } from './evaluate.js';
import type { Normalization } from '../data/augment.js';
import type { FeatureExtractor } from './extractor.js';
import { extractFeatures } from './features.js';
import { throughputText, withInference, type InferenceOptions } from './inference.js';
import type { EncoderModel } from '../model/build.js';
import { projectorName, writeEmbedProjector, type EmbedProjector } from './embed_projector.js';

export interface EmbedOptions {
  config: Config;
  checkpoint?: string;
  imagesDir: string;
  out: string;
  /** Element type of the .npy (default float32). */
  dtype?: NpyWriteDtype;
  log: (line: string) => void;
  progressStream?: NodeJS.WriteStream;
  /** Also write TensorBoard projector files for the images to this folder (embed_projector.ts). */
  projector?: string;
}

export interface EmbedResult {
  out: string;
  names: string;
  count: number;
  dim: number;
  projector?: EmbedProjector;
}

export interface EmbedFilesOptions {
  /** The encoder's input scaling (model.normalization). */
  normalization: Normalization;
  batchSize: number;
  onProgress?: (done: number) => void;
}

/** One batch of files decoded (shorter side to `side`, centre crop) into a dataset. */
async function decodeBatch(files: readonly string[], side: number): Promise<ArrayImageDataset> {
  const pixels = new Uint8Array(files.length * side * side * 3);
  const images = await Promise.all(files.map((f) => readImageResized(f, side)));
  images.forEach((img, i) => pixels.set(img.data, i * side * side * 3));
  return new ArrayImageDataset(pixels, side, side, new Int32Array(files.length).fill(-1), []);
}

/**
 * embedFiles through this run's inference runtime (created for the call and disposed after), then one
 * line after `bar` finishes, `<done> N images in S s (R img/s), decoding included`, for the end-to-end rate.
 */
export async function encodeFiles(model: EncoderModel, files: readonly string[], inference: InferenceOptions, done: string, bar: Progress): Promise<Float32Array> {
  return withInference(model, inference, async (extractor) => {
    // From the first decode: the runtime's setup is not the folder's rate.
    const started = performance.now();
    const features = await embedFiles(extractor, files, { normalization: model.normalization, batchSize: inference.batchSize, onProgress: (n) => bar.update(n) });
    bar.finish();
    inference.log(`${done} ${throughputText(files.length, performance.now() - started)}, decoding included`);
    return features;
  });
}

/**
 * Row-major [files x featureDim] features of image files, a batch at a time. Decoding is pipelined:
 * the next batch decodes (sharp, on libuv's thread pool) while the extractor runs the current one, so
 * a folder is not held back by decoding on the main thread.
 */
export async function embedFiles(extractor: FeatureExtractor, files: readonly string[], opts: EmbedFilesOptions): Promise<Float32Array> {
  const side = extractor.imageSize;
  const dim = extractor.featureDim;
  const features = new Float32Array(files.length * dim);
  const decode = (start: number) => {
    const batch = decodeBatch(files.slice(start, start + opts.batchSize), side);
    // A bad file's error surfaces where its batch is awaited; until then it is not "unhandled".
    batch.catch(() => undefined);
    return batch;
  };
  let next = files.length > 0 ? decode(0) : undefined;
  for (let start = 0; start < files.length; start += opts.batchSize) {
    const ds = await next!;
    const after = start + opts.batchSize;
    next = after < files.length ? decode(after) : undefined;
    features.set(await extractFeatures(extractor, ds, { normalization: opts.normalization, batchSize: opts.batchSize }), start * dim);
    opts.onProgress?.(start + ds.size);
  }
  return features;
}

export async function embedFolder(opts: EmbedOptions): Promise<EmbedResult> {
  if (!opts.out.endsWith('.npy')) throw new UserError(`--out: got '${opts.out}', expected a file name ending in .npy`);
  const files = await listImages(opts.imagesDir);
  if (files.length === 0) throw new UserError(`--images: no image files (${IMAGE_EXTENSIONS.join(' ')}) in ${opts.imagesDir}`);
  const cfg = opts.config;
  // A checkpoint brings its own model settings and input scaling; otherwise the config's model with
  // model.weights (e.g. a BiT .npz: pretrained features without any training) or its random init.
  const { model, source } = await loadEncoder(cfg, opts.checkpoint, opts.log);
  try {
    opts.log(`encoder  ${source} (inputs scaled for '${model.normalization}')`);
    const dim = model.backbone.featureDim;
    const bar = createProgress({ label: 'embed', total: files.length, unit: 'img', stream: opts.progressStream });
    const inference = { runtime: cfg.engine.inference, imageSize: cfg.data.image_size, batchSize: cfg.eval.batch_size, log: opts.log };
    const features = await encodeFiles(model, files, inference, 'embedded', bar);
    await writeNpy(opts.out, features, [files.length, dim], opts.dtype);
    const names = opts.out.replace(/\.npy$/, '.txt');
    await writeFileAtomic(names, `${files.map((f) => basename(f)).join('\n')}\n`);
    const projector = opts.projector === undefined ? undefined : await writeEmbedProjector(opts.projector, projectorName(opts.imagesDir), files, features, dim);
    return { out: opts.out, names, count: files.length, dim, ...(projector ? { projector } : {}) };
  } finally {
    model.store.dispose();
  }
}
