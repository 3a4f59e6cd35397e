/**
 * Files for TensorBoard's embedding projector: per embedding a folder projector/<name>/ with the
 * vectors (tensors.tsv, or tensors.bytes as raw little-endian float32), metadata.tsv (one column per
 * annotation, header first) and sprite.png (the thumbnails in a square grid, at most 8192 px a side,
 * as the projector requires), and projector_config.pbtxt listing every embedding of the folder.
 *
 * TensorBoard reads projector_config.pbtxt from a folder that holds event files (a run), so these
 * belong in the run's tb/ folder beside the writer's events.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { thumbnail } from '../../data/augment.js';
import type { ImageDataset } from '../../data/dataset.js';
import { writeFileAtomic } from '../../io/atomic.js';
import { blankImage, encodePng, pasteTile } from '../tile_sheet.js';
import { fromTextFormat, tensorBoardTypes, toTextFormat } from './schema.js';

export const PROJECTOR_CONFIG = 'projector_config.pbtxt';
/** The projector's limit on the sprite's side. */
export const SPRITE_MAX_SIDE = 8192;

export interface ProjectorEmbedding {
  /** Name in the projector's list, and the folder name (projector/<name>/). */
  name: string;
  /** N x dim, row-major. */
  features: Float32Array;
  dim: number;
  /** Columns of metadata.tsv in order, each with N values (labels, class names, slide ids, split). */
  metadata?: ReadonlyArray<{ name: string; values: ReadonlyArray<string | number> }>;
  /** Images of the N rows, for the sprite. */
  images?: Pick<ImageDataset, 'height' | 'width' | 'image'>;
  /** Largest thumbnail side in the sprite. Default 64. */
  thumbnailSide?: number;
  /** tsv (default; what the projector reads first) or binary (tensors.bytes, 4 bytes a value: for large sets). */
  format?: 'tsv' | 'binary';
}

export interface WrittenProjector {
  config: string;
  files: string[];
  /** The sprite's thumbnail side (absent without images). */
  thumbnailSide?: number;
}

/** Embeddings beyond this many values are written as raw float32 (tensors.bytes): a TSV would be ~5x larger. */
export const TSV_MAX_VALUES = 2_000_000;

/** How to write `rows` x `dim` features and how large their thumbnails: what the projector loads quickly. */
export function projectorLayout(rows: number, dim: number, imageSide: number): Pick<ProjectorEmbedding, 'format' | 'thumbnailSide'> {
  return { format: rows * dim > TSV_MAX_VALUES ? 'binary' : 'tsv', thumbnailSide: Math.min(rows > 2000 ? 32 : 64, imageSide) };
}

/** A TSV cell: no tabs or line breaks inside. */
const cell = (v: string | number): string => String(v).replace(/[\t\r\n]+/g, ' ');

/** The metadata columns of a dataset's items: label, class, group (slide, patient) and source when known, split. */
export function datasetMetadata(
  ds: Pick<ImageDataset, 'size' | 'labels' | 'classNames' | 'groups' | 'groupNames' | 'sources'>,
  split: string,
  groupColumn = 'group',
): Array<{ name: string; values: Array<string | number> }> {
  const rows = Array.from({ length: ds.size }, (_, i) => i);
  const columns: Array<{ name: string; values: Array<string | number> }> = [
    { name: 'label', values: rows.map((i) => ds.labels[i]!) },
    { name: 'class', values: rows.map((i) => ds.classNames[ds.labels[i]!] ?? 'unlabelled') },
  ];
  if (ds.groups) columns.push({ name: groupColumn, values: rows.map((i) => ds.groupNames?.[ds.groups![i]!] ?? ds.groups![i]!) });
  if (ds.sources) columns.push({ name: 'source', values: rows.map((i) => ds.sources![i]!.split(/[\\/]/).pop()!) });
  columns.push({ name: 'split', values: rows.map(() => split) });
  return columns;
}

/** The thumbnails of `count` images in a square grid (row-major, as the projector reads sprites). */
export function spriteImage(images: Pick<ImageDataset, 'height' | 'width' | 'image'>, count: number, maxSide = 64): { png: Buffer; side: number; columns: number } {
  const columns = Math.max(1, Math.ceil(Math.sqrt(count)));
  const side = Math.max(1, Math.min(maxSide, Math.floor(SPRITE_MAX_SIDE / columns)));
  const sprite = blankImage(columns * side, Math.ceil(count / columns) * side);
  for (let i = 0; i < count; i++) pasteTile(sprite, thumbnail(images, i, side), side, (i % columns) * side, Math.floor(i / columns) * side);
  return { png: encodePng(sprite), side, columns };
}

function tensorsTsv(features: Float32Array, dim: number): string {
  const rows: string[] = [];
  for (let r = 0; r * dim < features.length; r++) {
    const row = new Array<string>(dim);
    // 9 significant digits give float32 values back exactly.
    for (let c = 0; c < dim; c++) row[c] = String(Number(features[r * dim + c]!.toPrecision(9)));
    rows.push(row.join('\t'));
  }
  return `${rows.join('\n')}\n`;
}

async function readConfig(path: string): Promise<{ embeddings?: Array<Record<string, unknown>> } & Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw err;
  }
  return fromTextFormat(tensorBoardTypes().ProjectorConfig, text);
}

/**
 * Writes one embedding's files under <dir>/projector/<name>/ and adds it to <dir>/projector_config.pbtxt
 * (replacing an earlier embedding of the same name, keeping the others).
 */
export async function writeProjector(dir: string, e: ProjectorEmbedding): Promise<WrittenProjector> {
  if (!/^[A-Za-z0-9._-]+$/.test(e.name)) throw new Error(`projector embedding name '${e.name}': use letters, digits, '.', '_' and '-'`);
  const count = e.features.length / e.dim;
  if (!Number.isInteger(count) || count < 1) throw new RangeError(`projector ${e.name}: ${e.features.length} values are not N x ${e.dim}`);
  for (const col of e.metadata ?? []) {
    if (col.values.length !== count) throw new RangeError(`projector ${e.name}: metadata column ${col.name} has ${col.values.length} values for ${count} rows`);
  }
  const folder = join('projector', e.name);
  const files: string[] = [];
  const write = async (name: string, data: string | Uint8Array) => {
    const path = join(dir, folder, name);
    await writeFileAtomic(path, data);
    files.push(path);
    return `${folder}/${name}`;
  };
  const binary = e.format === 'binary';
  const info: Record<string, unknown> = {
    tensor_name: e.name,
    tensor_shape: [count, e.dim],
    tensor_path: binary
      ? await write('tensors.bytes', new Uint8Array(Float32Array.from(e.features).buffer))
      : await write('tensors.tsv', tensorsTsv(e.features, e.dim)),
  };
  const columns = e.metadata ?? [];
  if (columns.length > 0) {
    // One column is written without a header; several need one (the projector's rule).
    const header = columns.length > 1 ? [columns.map((c) => cell(c.name)).join('\t')] : [];
    const lines = Array.from({ length: count }, (_, i) => columns.map((c) => cell(c.values[i]!)).join('\t'));
    info.metadata_path = await write('metadata.tsv', `${[...header, ...lines].join('\n')}\n`);
  }
  let thumbnailSide: number | undefined;
  if (e.images) {
    const sprite = spriteImage(e.images, count, e.thumbnailSide);
    thumbnailSide = sprite.side;
    info.sprite = { image_path: await write('sprite.png', sprite.png), single_image_dim: [sprite.side, sprite.side] };
  }
  const configPath = join(dir, PROJECTOR_CONFIG);
  const config = await readConfig(configPath);
  const embeddings = (config.embeddings ?? []).filter((x) => x.tensor_name !== e.name);
  embeddings.push(info);
  await writeFileAtomic(configPath, toTextFormat(tensorBoardTypes().ProjectorConfig, { ...config, embeddings }));
  return { config: configPath, files, thumbnailSide };
}
