/**
 * `simtrip embed --projector [DIR]`: the embedded images in TensorBoard's embedding projector. DIR
 * gets projector_config.pbtxt, projector/<name>/ (the features, a metadata TSV naming each row's file,
 * a sprite of thumbnails) and an event file holding only its version record, which makes DIR a run
 * that `tensorboard --logdir` finds, alone or inside a folder of runs.
 */
import { basename } from 'node:path';
import { readImageResized } from '../io/image.js';
import { projectorLayout } from '../report/tensorboard/projector.js';
import { TensorBoardWriter } from '../report/tensorboard/writer.js';

export interface EmbedProjector {
  dir: string;
  name: string;
  config: string;
}

/** An embedding name from a folder's name: letters, digits, '.', '_' and '-'. */
export function projectorName(imagesDir: string): string {
  return basename(imagesDir.replace(/[\\/]+$/, '')).replace(/[^A-Za-z0-9._-]+/g, '_') || 'images';
}

/** Writes the projector files of `files` (rows of `features`, N x dim) to `dir`. */
export async function writeEmbedProjector(dir: string, name: string, files: readonly string[], features: Float32Array, dim: number): Promise<EmbedProjector> {
  const layout = projectorLayout(files.length, dim, 64);
  const side = layout.thumbnailSide!;
  // Thumbnails decoded again at sprite size: the model's inputs were not kept, a batch at a time.
  const thumbs: Uint8Array[] = [];
  for (const f of files) thumbs.push((await readImageResized(f, side)).data);
  const writer = await TensorBoardWriter.open(dir, { sessionStart: false });
  try {
    const written = await writer.projector({
      name,
      features,
      dim,
      metadata: [{ name: 'file', values: files.map((f) => basename(f)) }],
      images: { height: side, width: side, image: (i) => thumbs[i]! },
      ...layout,
    });
    return { dir, name, config: written.config };
  } finally {
    writer.close();
  }
}
