/**
 * `simtrip embed`: backbone features of every image in a folder (sorted by file name) as a float32
 * .npy [N, D], plus a .txt beside it naming the image of each row.
 *
 * Images are decoded a batch at a time (resized so the shorter side is data.image_size, centre
 * crop), so a large folder never sits in memory whole.
 */
import { basename } from 'node:path';
import type { Config } from '../config/schema.js';
import { ArrayImageDataset } from '../data/dataset.js';
import { writeFileAtomic } from '../io/atomic.js';
import { IMAGE_EXTENSIONS, listImages, readImageResized } from '../io/image.js';
import { writeNpy } from '../io/npy.js';
import { createProgress } from '../report/progress.js';
import { UserError } from '../util/errors.js';
import { loadEncoder } from './evaluate.js';
import { extractFeatures } from './features.js';

export interface EmbedOptions {
  config: Config;
  checkpoint?: string;
  imagesDir: string;
  out: string;
  log: (line: string) => void;
  progressStream?: NodeJS.WriteStream;
}

export interface EmbedResult {
  out: string;
  names: string;
  count: number;
  dim: number;
}

export async function embedFolder(opts: EmbedOptions): Promise<EmbedResult> {
  if (!opts.out.endsWith('.npy')) throw new UserError(`--out: got '${opts.out}', expected a file name ending in .npy`);
  const files = await listImages(opts.imagesDir);
  if (files.length === 0) throw new UserError(`--images: no image files (${IMAGE_EXTENSIONS.join(' ')}) in ${opts.imagesDir}`);
  const cfg = opts.config;
  const { model, source } = await loadEncoder(cfg, opts.checkpoint, opts.log);
  try {
    opts.log(`encoder  ${source}`);
    const side = cfg.data.image_size;
    const dim = model.backbone.featureDim;
    const features = new Float32Array(files.length * dim);
    const batch = cfg.eval.batch_size;
    const bar = createProgress({ label: 'embed', total: files.length, unit: 'img', stream: opts.progressStream });
    for (let start = 0; start < files.length; start += batch) {
      const chunk = files.slice(start, start + batch);
      const pixels = new Uint8Array(chunk.length * side * side * 3);
      const images = await Promise.all(chunk.map((f) => readImageResized(f, side)));
      images.forEach((img, i) => pixels.set(img.data, i * side * side * 3));
      const ds = new ArrayImageDataset(pixels, side, side, new Int32Array(chunk.length).fill(-1), []);
      features.set(extractFeatures(model.backbone, ds, { imageSize: side, normalization: model.normalization, batchSize: batch }), start * dim);
      bar.update(start + chunk.length);
    }
    bar.finish();
    await writeNpy(opts.out, features, [files.length, dim]);
    const names = opts.out.replace(/\.npy$/, '.txt');
    await writeFileAtomic(names, `${files.map((f) => basename(f)).join('\n')}\n`);
    return { out: opts.out, names, count: files.length, dim };
  } finally {
    model.store.dispose();
  }
}
