/**
 * The step every file-based loader ends with: decode a list of (path, label, group) entries through
 * the decode cache into one ArrayImageDataset, recording the files that failed as bad items.
 */
import type { BadItems } from './bad_items.js';
import { ArrayImageDataset } from './dataset.js';
import { decodeImages, describeDecode, type Decoder } from './decode_cache.js';

export interface FileEntry {
  path: string;
  /** Class index, -1 for unlabelled items. */
  label: number;
  /** Index into the dataset's group names, when grouped. */
  group?: number;
}

export interface FileLoadContext {
  /** Side of the stored square images (data.image_size). */
  size: number;
  cacheDir?: string;
  /** Receives the files that are missing or fail to decode. */
  bad: BadItems;
  log: (line: string) => void;
  decoder?: Decoder;
}

export interface LoadedEntries {
  dataset: ArrayImageDataset;
  /** Indices (into the entries) of the items in the dataset. */
  kept: Int32Array;
}

/** Decodes the entries; `what` names them in the log ("ham10000 train"). */
export async function loadEntries(
  entries: readonly FileEntry[],
  classNames: readonly string[],
  groupNames: readonly string[] | undefined,
  ctx: FileLoadContext,
  what: string,
): Promise<LoadedEntries> {
  const outcome = await decodeImages(
    entries.map((e) => e.path),
    { size: ctx.size, cacheDir: ctx.cacheDir, decoder: ctx.decoder, log: ctx.log },
  );
  for (const f of outcome.failures) ctx.bad.add(f.kind, f.path, f.detail);
  if (entries.length > 0) ctx.log(`${what}: ${describeDecode(outcome)}`);
  const kept = outcome.kept;
  const pick = <T>(get: (e: FileEntry) => T): T[] => Array.from(kept, (i) => get(entries[i]!));
  const labels = Int32Array.from(pick((e) => e.label));
  const sources = pick((e) => e.path);
  let groups: Int32Array | undefined;
  let names: string[] | undefined;
  if (groupNames) {
    // Only the groups present, in their original order: a held-out split never lists empty groups.
    const raw = pick((e) => e.group ?? -1);
    const present = [...new Set(raw)].sort((a, b) => a - b);
    if (present[0] === -1) throw new Error(`${what}: grouped entries without a group`);
    groups = Int32Array.from(raw, (g) => present.indexOf(g));
    names = present.map((g) => groupNames[g]!);
  }
  const dataset = new ArrayImageDataset(outcome.pixels, ctx.size, ctx.size, labels, classNames, { groups, groupNames: names, sources });
  return { dataset, kept };
}
