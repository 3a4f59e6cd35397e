/**
 * Unlabelled pathology patches for SimTriplet, with their spatial neighbours.
 *
 * Two layouts:
 * - 'names': every image under the root (any depth) is a patch whose slide and grid position are read
 *   from its file name through data.patches.pattern (default `<slide>_<x>_<y>.<ext>`). x/y are pixel
 *   offsets (divided by the stride; default the patch width) or grid indices. Neighbours are the
 *   patches of the same slide at the 8 adjacent grid cells.
 * - 'simtriplet': the released SimTriplet data. Anchors are the images under `<root>/original/`; the
 *   neighbours of `original/<dir>/<name>.png` are files `<name>_<k>.png` (k a single digit; the
 *   release reads k = 0..7) in a folder elsewhere under the root whose path ends in `<dir>` (the
 *   release uses original_nearby_80000/original_nearby_8wan/<dir>). The release takes the first
 *   existing neighbour file; here one is drawn per epoch like in the 'names' layout.
 * 'auto' picks 'simtriplet' when `<root>/original` exists.
 */
import { existsSync, statSync } from 'node:fs';
import { basename, dirname, extname, join, relative, sep } from 'node:path';
import type { DataConfig } from '../config/schema.js';
import { listImagesRecursive, readImageSize } from '../io/image.js';
import { InputFileError, UserError } from '../util/errors.js';
import type { BadItems } from './bad_items.js';
import type { StoredImageDataset } from './dataset.js';
import { loadEntries, type FileEntry, type FileLoadContext } from './load_files.js';
import { gridNeighbourLists, ListNeighbourIndex, packNeighbours, type GridPosition } from './neighbours.js';

export type PatchesConfig = DataConfig['patches'];

export interface PatchName {
  /** Absent when the pattern has no <slide>: the patch's folder is then its slide. */
  slide?: string;
  x: number;
  y: number;
}

const PLACEHOLDERS: Record<string, string> = {
  // Greedy, so slide names may contain the separator ("TCGA-A1_part2_512_1024.png").
  slide: '(.+)',
  x: '(-?\\d+)',
  y: '(-?\\d+)',
  ext: '([A-Za-z0-9]+)',
};

/**
 * Compiles a file-name pattern into a parser: placeholders <slide>, <x>, <y>, <ext>, everything else
 * literal. <x> and <y> are required; each placeholder may appear once.
 */
export function compilePattern(pattern: string): (fileName: string) => PatchName | undefined {
  const order: string[] = [];
  let source = '^';
  let last = 0;
  for (const m of pattern.matchAll(/<([^<>]*)>/g)) {
    const name = m[1]!;
    if (!(name in PLACEHOLDERS)) {
      throw new UserError(`data.patches.pattern: unknown placeholder <${name}> in '${pattern}' (use <slide>, <x>, <y>, <ext>)`);
    }
    if (order.includes(name)) throw new UserError(`data.patches.pattern: <${name}> appears twice in '${pattern}'`);
    order.push(name);
    source += escapeRegExp(pattern.slice(last, m.index)) + PLACEHOLDERS[name]!;
    last = m.index! + m[0].length;
  }
  source += `${escapeRegExp(pattern.slice(last))}$`;
  for (const required of ['x', 'y']) {
    if (!order.includes(required)) throw new UserError(`data.patches.pattern: '${pattern}' has no <${required}>`);
  }
  const re = new RegExp(source);
  return (fileName) => {
    const m = re.exec(fileName);
    if (!m) return undefined;
    const get = (name: string) => m[order.indexOf(name) + 1]!;
    const out: PatchName = { x: Number(get('x')), y: Number(get('y')) };
    if (order.includes('slide')) out.slide = get('slide');
    return out;
  };
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export interface PatchLayout {
  /** Anchor (train) entries followed by neighbour-only files (simtriplet layout). */
  entries: FileEntry[];
  /** Number of anchors: entries[0 .. anchors). */
  anchors: number;
  /** Neighbour lists per anchor, as indices into entries. */
  neighbours: number[][];
  /** Slide names and the slide of every entry (a neighbour file: its anchor's slide). */
  slideNames: string[];
  slides: Int32Array;
  layout: 'names' | 'simtriplet';
}

interface Parsed {
  path: string;
  slide: string;
  x: number;
  y: number;
}

/**
 * Patches named by coordinates. Files that do not fit the pattern, positions off the stride grid
 * and second files on one grid cell go to `bad`. Anchors are ordered by slide, then row, then
 * column, so data.limit keeps whole neighbourhoods.
 */
export async function scanNamedPatches(root: string, cfg: PatchesConfig, bad: BadItems, limit?: number): Promise<PatchLayout> {
  const parse = compilePattern(cfg.pattern);
  const files = await listImagesRecursive(root);
  if (files.length === 0) throw new InputFileError(root, 'no image files (PNG, JPEG, TIFF) under this folder');
  const parsed: Parsed[] = [];
  for (const path of files) {
    const name = parse(basename(path));
    if (!name) {
      bad.add('name not matching the pattern', path, `pattern ${cfg.pattern}`);
      continue;
    }
    const slide = name.slide ?? (relative(root, dirname(path)) || '.');
    parsed.push({ path, slide, x: name.x, y: name.y });
  }
  let stride = 1;
  if (cfg.units === 'pixels') stride = cfg.stride ?? (await typicalWidth(parsed.map((p) => p.path)));
  // Grid cells relative to each slide's smallest coordinate, which need not be a multiple of the stride.
  const origin = new Map<string, { x: number; y: number }>();
  for (const p of parsed) {
    const o = origin.get(p.slide);
    if (!o) origin.set(p.slide, { x: p.x, y: p.y });
    else {
      o.x = Math.min(o.x, p.x);
      o.y = Math.min(o.y, p.y);
    }
  }
  const cells: Parsed[] = [];
  const taken = new Map<string, string>();
  for (const p of parsed) {
    const o = origin.get(p.slide)!;
    const dx = p.x - o.x;
    const dy = p.y - o.y;
    if (dx % stride !== 0 || dy % stride !== 0) {
      bad.add('position off the patch grid', p.path, `(${p.x}, ${p.y}) is not a multiple of stride ${stride} from the slide's first patch (${o.x}, ${o.y}); set data.patches.stride`);
      continue;
    }
    const cell = { ...p, x: dx / stride, y: dy / stride };
    const key = `${cell.slide}\0${cell.x}\0${cell.y}`;
    const first = taken.get(key);
    if (first !== undefined) {
      bad.add('duplicate grid position', p.path, `same slide and cell as ${first}`);
      continue;
    }
    taken.set(key, p.path);
    cells.push(cell);
  }
  cells.sort((a, b) => (a.slide < b.slide ? -1 : a.slide > b.slide ? 1 : a.y - b.y || a.x - b.x));
  const chosen = limit === undefined ? cells : cells.slice(0, limit);
  const slideNames = [...new Set(chosen.map((c) => c.slide))];
  const entries = chosen.map((c) => ({ path: c.path, label: -1 }));
  const positions: GridPosition[] = chosen.map((c) => ({ slide: slideNames.indexOf(c.slide), x: c.x, y: c.y }));
  return {
    entries,
    anchors: entries.length,
    neighbours: gridNeighbourLists(positions),
    slideNames,
    slides: Int32Array.from(positions, (p) => p.slide),
    layout: 'names',
  };
}

/**
 * The patch width, as the default stride: the widest of the first few patches, since patches cut at
 * a slide's right or bottom edge may be narrower. Headers only, no decoding.
 */
async function typicalWidth(paths: readonly string[]): Promise<number> {
  let width = 1;
  for (const path of paths.slice(0, 16)) {
    try {
      width = Math.max(width, (await readImageSize(path)).width);
    } catch {
      // An unreadable file is reported when it is decoded; it just does not vote here.
    }
  }
  return width;
}

const NEIGHBOUR_FILE = /^(.*)_(\d)$/;

function withoutExt(path: string): string {
  return path.slice(0, path.length - extname(path).length);
}

/** The released SimTriplet layout (see the file comment). */
export async function scanSimTripletPatches(root: string, limit?: number): Promise<PatchLayout> {
  const originalDir = join(root, 'original');
  const allAnchors = await listImagesRecursive(originalDir);
  if (allAnchors.length === 0) throw new InputFileError(originalDir, 'no image files (SimTriplet layout: the anchor patches)');
  const anchors = limit === undefined ? allAnchors : allAnchors.slice(0, limit);
  // Anchor key: its path below original/ without extension, with '/' separators.
  const anchorKey = new Map<string, number>();
  anchors.forEach((p, i) => anchorKey.set(withoutExt(relative(originalDir, p)).split(sep).join('/'), i));
  const neighbourFiles: string[] = [];
  const neighbourOf: number[] = [];
  const lists: number[][] = anchors.map(() => []);
  for (const path of await listImagesRecursive(root)) {
    const rel = relative(root, path).split(sep);
    if (rel[0] === 'original') continue;
    const m = NEIGHBOUR_FILE.exec(withoutExt(rel.join('/')));
    if (!m) continue;
    // The longest tail of the folder path that names an anchor: <dir>/<name> before <name> alone.
    const parts = m[1]!.split('/');
    for (let from = 0; from < parts.length; from++) {
      const anchor = anchorKey.get(parts.slice(from).join('/'));
      if (anchor !== undefined) {
        lists[anchor]!.push(anchors.length + neighbourFiles.length);
        neighbourFiles.push(path);
        neighbourOf.push(anchor);
        break;
      }
    }
  }
  const slideOf = (p: string) => relative(originalDir, dirname(p)) || '.';
  const slideNames = [...new Set(anchors.map(slideOf))];
  const anchorSlides = anchors.map((p) => slideNames.indexOf(slideOf(p)));
  return {
    entries: [...anchors, ...neighbourFiles].map((path) => ({ path, label: -1 })),
    anchors: anchors.length,
    neighbours: lists,
    slideNames,
    slides: Int32Array.from([...anchorSlides, ...neighbourOf.map((a) => anchorSlides[a]!)]),
    layout: 'simtriplet',
  };
}

export function resolvePatchLayout(root: string, layout: PatchesConfig['layout']): 'names' | 'simtriplet' {
  if (layout !== 'auto') return layout;
  const original = join(root, 'original');
  return existsSync(original) && statSync(original).isDirectory() ? 'simtriplet' : 'names';
}

export interface LoadedPatches {
  /** The anchors (labels -1, groups = slide). */
  train: StoredImageDataset;
  neighbours: ListNeighbourIndex;
  layout: 'names' | 'simtriplet';
  slides: number;
}

/**
 * Lists, decodes and indexes the patches. Anchors that fail to decode are dropped together with
 * their neighbour links; the pool (anchors, then neighbour-only files) is decoded in one pass.
 */
export async function loadPatches(root: string, cfg: PatchesConfig, ctx: FileLoadContext, limit?: number): Promise<LoadedPatches> {
  const layout = resolvePatchLayout(root, cfg.layout);
  const scan = layout === 'simtriplet' ? await scanSimTripletPatches(root, limit) : await scanNamedPatches(root, cfg, ctx.bad, limit);
  const withGroups = scan.entries.map((e, i) => ({ ...e, group: scan.slides[i]! }));
  const { dataset: pool, kept } = await loadEntries(withGroups, [], scan.slideNames, ctx, `patches ${root}`);
  // Old entry index -> new pool index (-1: failed to decode).
  const where = new Int32Array(scan.entries.length).fill(-1);
  kept.forEach((old, now) => (where[old] = now));
  let anchorsKept = 0;
  while (anchorsKept < kept.length && kept[anchorsKept]! < scan.anchors) anchorsKept++;
  const lists = Array.from(kept.subarray(0, anchorsKept), (old) =>
    scan.neighbours[old]!.map((j) => where[j]!).filter((j) => j >= 0),
  );
  const { offsets, targets } = packNeighbours(lists);
  const train = anchorsKept === pool.size ? pool : pool.head(anchorsKept);
  const neighbours = new ListNeighbourIndex(offsets, targets, pool);
  return { train, neighbours, layout, slides: new Set(train.groups).size };
}
