/**
 * `simtrip embed`: backbone features of every image in a folder (sorted by file name) as a float32
 * (or, with dtype float16, half-size float16) .npy [N, D], plus a .txt beside it naming the image of
 * each row.
 *
 * Images are decoded a batch at a time (resized so the shorter side is data.image_size, centre
 * crop), so a large folder never sits in memory whole.
 */
import { basename } from 'node:path';
import type { Config } from '../config/schema.js';
import { ArrayImageDataset } from '../data/dataset.js';
import { writeFileAtomic } from '../io/atomic.js';
import { IMAGE_EXTENSIONS, listImages, readImageResized } from '../io/image.js';
import { writeNpy, type NpyWriteDtype } from '../io/npy.js';
import { createProgress } from '../report/progress.js';
import type { EncoderModel } from '../model/build.js';
import { UserError } from '../util/errors.js';
import { loadEncoder } from './evaluate.js';
import { extractFeatures } from './features.js';
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
  /** Side of the square model input (data.image_size). */
  imageSize: number;
  batchSize: number;
  onProgress?: (done: number) => void;
}

/**
 * Row-major [files x featureDim] features of image files with the encoder's own input scaling
 * (model.normalization: the checkpoint's, or the one the weights expect), a batch at a time.
 */
export async function embedFiles(model: EncoderModel, files: readonly string[], opts: EmbedFilesOptions): Promise<Float32Array> {
  const side = opts.imageSize;
  const dim = model.backbone.featureDim;
  const features = new Float32Array(files.length * dim);
  for (let start = 0; start < files.length; start += opts.batchSize) {
    const chunk = files.slice(start, start + opts.batchSize);
    const pixels = new Uint8Array(chunk.length * side * side * 3);
    const images = await Promise.all(chunk.map((f) => readImageResized(f, side)));
    images.forEach((img, i) => pixels.set(img.data, i * side * side * 3));
    const ds = new ArrayImageDataset(pixels, side, side, new Int32Array(chunk.length).fill(-1), []);
    features.set(extractFeatures(model.backbone, ds, { imageSize: side, normalization: model.normalization, batchSize: opts.batchSize }), start * dim);
    opts.onProgress?.(start + chunk.length);
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
    const features = await embedFiles(model, files, {
      imageSize: cfg.data.image_size,
      batchSize: cfg.eval.batch_size,
      onProgress: (done) => bar.update(done),
    });
    bar.finish();
    await writeNpy(opts.out, features, [files.length, dim], opts.dtype);
    const names = opts.out.replace(/\.npy$/, '.txt');
    await writeFileAtomic(names, `${files.map((f) => basename(f)).join('\n')}\n`);
    const projector = opts.projector === undefined ? undefined : await writeEmbedProjector(opts.projector, projectorName(opts.imagesDir), files, features, dim);
    return { out: opts.out, names, count: files.length, dim, ...(projector ? { projector } : {}) };
  } finally {
    model.store.dispose();
  }
}
