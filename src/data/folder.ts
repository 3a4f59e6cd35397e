/**
 * Labelled image folders for the probes: `<root>/<group>/<class>/*` (group = slide or patient, the
 * released SimTriplet layout) or `<root>/<class>/*`.
 *
 * Grouped data is split by group: the held-out group (data.labelled.holdout_group, default the last
 * group by name) is the test set, the others are what the probe fits on, with their groups kept for
 * leave-one-group-out cross-validation. Patches of one slide are strongly correlated, so a random
 * split would report on near-copies of training items. Flat data gets a seeded, class-stratified
 * test_fraction split instead.
 */
import { join } from 'node:path';
import type { DataConfig } from '../config/schema.js';
import { listImages, listSubdirectories } from '../io/image.js';
import { InputFileError, UserError } from '../util/errors.js';
import { Rng } from '../util/rng.js';
import type { StoredImageDataset } from './dataset.js';
import { warnEmptiedClasses } from './limits.js';
import { loadEntries, type FileEntry, type FileLoadContext } from './load_files.js';
import { groupedStratifiedSplit } from './split.js';

export type LabelledConfig = DataConfig['labelled'];

export interface LabelledScan {
  layout: 'grouped' | 'flat';
  entries: FileEntry[];
  classNames: string[];
  /** Present for the grouped layout. */
  groupNames?: string[];
}

/** Which layout `root` has: grouped when its sub-folders hold class folders, flat when they hold images. */
async function detectLayout(root: string, groupsOrClasses: readonly string[]): Promise<'grouped' | 'flat'> {
  let withImages = 0;
  let withFolders = 0;
  for (const name of groupsOrClasses) {
    const dir = join(root, name);
    if ((await listImages(dir)).length > 0) withImages++;
    if ((await listSubdirectories(dir)).length > 0) withFolders++;
  }
  if (withFolders > 0 && withImages === 0) return 'grouped';
  if (withImages > 0 && withFolders === 0) return 'flat';
  throw new UserError(
    `${root}: cannot tell the labelled layout (${withImages} sub-folder(s) hold images, ${withFolders} hold folders); ` +
      "set data.labelled.layout to 'grouped' (<root>/<group>/<class>/*) or 'flat' (<root>/<class>/*)",
  );
}

/** Lists the labelled images (no decoding). Classes are the class folder names, sorted. */
export async function scanLabelledFolder(root: string, layout: LabelledConfig['layout']): Promise<LabelledScan> {
  const top = await listSubdirectories(root);
  if (top.length === 0) throw new InputFileError(root, 'no sub-folders (expected <root>/<group>/<class>/* or <root>/<class>/*)');
  const resolved = layout === 'auto' ? await detectLayout(root, top) : layout;
  if (resolved === 'flat') {
    const entries: FileEntry[] = [];
    for (const [label, cls] of top.entries()) {
      for (const path of await listImages(join(root, cls))) entries.push({ path, label });
    }
    if (entries.length === 0) throw new InputFileError(root, 'no images in the class folders');
    return { layout: 'flat', entries, classNames: top };
  }
  const perGroup = await Promise.all(top.map(async (g) => ({ group: g, classes: await listSubdirectories(join(root, g)) })));
  const classNames = [...new Set(perGroup.flatMap((g) => g.classes))].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const entries: FileEntry[] = [];
  for (const [group, { group: g, classes }] of perGroup.entries()) {
    for (const cls of classes) {
      const label = classNames.indexOf(cls);
      for (const path of await listImages(join(root, g, cls))) entries.push({ path, label, group });
    }
  }
  if (entries.length === 0) throw new InputFileError(root, 'no images in <group>/<class> folders');
  return { layout: 'grouped', entries, classNames, groupNames: top };
}

export interface HoldoutSplit {
  /** Indices of the items the probe fits on, then of the test items; each in a seeded order. */
  train: Int32Array;
  test: Int32Array;
  /** The held-out group, for grouped data. */
  holdout?: string;
}

function shuffled(indices: number[], seed: number, what: string): Int32Array {
  const order = new Rng(seed, 'labelled-order', what).permutation(indices.length);
  return Int32Array.from(order, (k) => indices[k]!);
}

/**
 * Splits labelled items: by group when `groups` is given (see the file comment), else stratified by
 * label. Items are returned in a seeded order so that data.limit keeps a mix of classes and groups.
 */
export function holdoutSplit(
  labels: Int32Array,
  groups: Int32Array | undefined,
  groupNames: readonly string[] | undefined,
  cfg: Pick<LabelledConfig, 'holdout_group' | 'test_fraction'>,
  seed: number,
): HoldoutSplit {
  const train: number[] = [];
  const test: number[] = [];
  let holdout: string | undefined;
  if (groups && groupNames) {
    const present = [...new Set(groups)].map((g) => groupNames[g]!).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    if (present.length < 2) {
      throw new UserError(`labelled data: leave-one-group-out needs at least 2 groups, found ${present.length} (${present.join(', ')})`);
    }
    holdout = cfg.holdout_group ?? present[present.length - 1]!;
    if (!present.includes(holdout)) {
      throw new UserError(`data.labelled.holdout_group: '${holdout}' is not one of the groups (${present.join(', ')})`);
    }
    const h = groupNames.indexOf(holdout);
    groups.forEach((g, i) => (g === h ? test : train).push(i));
  } else {
    const side = groupedStratifiedSplit(
      Array.from(labels, (label, i) => ({ group: String(i), label })),
      [1 - cfg.test_fraction, cfg.test_fraction],
      seed,
    );
    side.forEach((s, i) => (s === 1 ? test : train).push(i));
  }
  return { train: shuffled(train, seed, 'train'), test: shuffled(test, seed, 'test'), holdout };
}

export interface LabelledSplits {
  probeTrain: StoredImageDataset;
  test: StoredImageDataset;
  layout: 'grouped' | 'flat';
  holdout?: string;
}

/**
 * Reads and splits a labelled folder. `limits` cap the probe-train and test items (data.limit,
 * data.test_limit), applied before decoding so smoke runs only decode what they use.
 */
export async function loadLabelledFolder(
  root: string,
  cfg: LabelledConfig,
  seed: number,
  ctx: FileLoadContext,
  limits: { train?: number; test?: number } = {},
  limitKeys: { train: string; test: string } = { train: 'data.limit', test: 'data.test_limit' },
): Promise<LabelledSplits> {
  const scan = await scanLabelledFolder(root, cfg.layout);
  const labels = Int32Array.from(scan.entries, (e) => e.label);
  const groups = scan.groupNames ? Int32Array.from(scan.entries, (e) => e.group!) : undefined;
  const split = holdoutSplit(labels, groups, scan.groupNames, cfg, seed);
  const pick = (indices: Int32Array, limit: number | undefined) =>
    Array.from(indices.subarray(0, limit ?? indices.length), (i) => scan.entries[i]!);
  const load = async (indices: Int32Array, limit: number | undefined, key: string, what: string) => {
    const entries = pick(indices, limit);
    warnEmptiedClasses(key, limit, what, Array.from(indices, (i) => labels[i]!), entries.map((e) => e.label), scan.classNames, ctx.log);
    return (await loadEntries(entries, scan.classNames, scan.groupNames, ctx, what)).dataset;
  };
  const probeTrain = await load(split.train, limits.train, limitKeys.train, `labelled ${root} probe-train`);
  const test = await load(split.test, limits.test, limitKeys.test, `labelled ${root} test`);
  return { probeTrain, test, layout: scan.layout, holdout: split.holdout };
}
