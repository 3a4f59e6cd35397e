/**
 * `simtrip synth`: writes generated data in the real on-disk formats, so the HAM10000 and pathology
 * presets can be tried (and their loaders exercised) without downloading anything:
 *
 *   simtrip synth slides   --out DIR   DIR/patches/<slide>_<x>_<y>.png + DIR/labelled/<slide>/<class>/*.png
 *   simtrip synth ham10000 --out DIR   DIR/HAM10000_metadata.csv + DIR/HAM10000_images_part_{1,2}/*.jpg
 *
 * The generators' modules (and sharp) load only when a synth command runs.
 */
import { Command, InvalidArgumentError } from 'commander';
import { existsSync, statSync } from 'node:fs';
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { SlidesSchema } from '../config/schema.js';
import { UserError } from '../util/errors.js';

type Log = (line: string) => void;

/** A commander parser for an integer flag (commander reports a bad value as a usage error, exit 2). */
function integer(value: string): number {
  const n = Number(value);
  if (!/^-?\d+$/.test(value.trim()) || !Number.isSafeInteger(n)) throw new InvalidArgumentError('expected an integer');
  return n;
}

/**
 * Makes `out` ready for `ours` (the entries this generator writes there). An existing, non-empty
 * folder is refused unless `force`; with force only `ours` are removed, so stale files of an earlier
 * run cannot mix into the new data while anything else in the folder is left alone.
 */
async function prepareOut(out: string, ours: readonly string[], force: boolean): Promise<void> {
  if (!existsSync(out)) return;
  if (!statSync(out).isDirectory()) throw new UserError(`--out ${out}: exists and is not a folder`);
  const entries = await readdir(out);
  if (entries.length === 0) return;
  if (!force) {
    throw new UserError(`--out ${out}: folder exists and is not empty (${entries.slice(0, 3).join(', ')}${entries.length > 3 ? ', ...' : ''}); choose another folder, or add --force to replace ${ours.join(', ')} there`);
  }
  for (const name of ours) await rm(join(out, name), { recursive: true, force: true });
}

/** Progress on one terminal line when stderr is a terminal; otherwise only the final count. */
function progressLine(what: string): (done: number, total: number) => void {
  let last = -1;
  return (done, total) => {
    if (process.stderr.isTTY) {
      const pct = Math.floor((100 * done) / total);
      if (pct !== last || done === total) process.stderr.write(`\r${what}: ${done}/${total} (${pct}%)${done === total ? '\n' : ''}`);
      last = pct;
    } else if (done === total) {
      process.stderr.write(`${what}: ${done}/${total}\n`);
    }
  };
}

const SLIDE_FLAGS: Record<string, string> = {
  train_slides: '--train-slides',
  eval_slides: '--eval-slides',
  grid: '--grid',
  patch_size: '--patch-size',
  classes: '--classes',
};

interface SlidesOptions {
  out: string;
  seed: number;
  trainSlides: number;
  evalSlides: number;
  grid: number;
  patchSize: number;
  classes: number;
  force?: boolean;
}

async function synthSlides(o: SlidesOptions, log: Log): Promise<void> {
  const parsed = SlidesSchema.safeParse({ train_slides: o.trainSlides, eval_slides: o.evalSlides, grid: o.grid, patch_size: o.patchSize, classes: o.classes });
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new UserError(`${SLIDE_FLAGS[String(issue.path[0])] ?? String(issue.path[0])}: ${issue.message}`);
  }
  const cfg = parsed.data;
  await prepareOut(o.out, ['patches', 'labelled'], o.force ?? false);
  const side = cfg.grid * cfg.patch_size;
  log(`synth slides: rendering ${cfg.train_slides} train + ${cfg.eval_slides} eval slides of ${side}x${side} px (${cfg.grid}x${cfg.grid} patches of ${cfg.patch_size} px, ${cfg.classes} tissue classes, seed ${o.seed}) ...`);
  const { writeSyntheticSlides } = await import('../data/synthetic_slides.js');
  const w = await writeSyntheticSlides(o.out, cfg, o.seed);
  process.stdout.write(
    `wrote ${w.patches} unlabelled patches of ${cfg.train_slides} slides to ${w.patchesDir} and ${w.labelledPatches} labelled patches of ${cfg.eval_slides} slides to ${w.labelledDir}\n` +
      `  data: { kind: patches, root: ${w.patchesDir}, image_size: ${cfg.patch_size}, labelled: { root: ${w.labelledDir} } }\n`,
  );
}

interface HamOptions {
  out: string;
  seed: number;
  lesions: number;
  force?: boolean;
}

async function synthHam(o: HamOptions, log: Log): Promise<void> {
  const { HAM10000_PARTS, hamLesionMix, writeHam10000Folder } = await import('../data/ham10000_writer.js');
  const { HAM10000_CLASS_NAMES, HAM10000_METADATA } = await import('../data/ham10000.js');
  if (o.lesions < 7) throw new UserError(`--lesions: got ${o.lesions}, need at least 7 (one lesion per dx class)`);
  const mix = hamLesionMix(o.lesions);
  await prepareOut(o.out, [HAM10000_METADATA, ...HAM10000_PARTS], o.force ?? false);
  log(`synth ham10000: ${o.lesions} lesions (${HAM10000_CLASS_NAMES.map((c, i) => `${c} ${mix[i]}`).join(', ')}), 600x450 JPEGs, seed ${o.seed}`);
  const w = await writeHam10000Folder(o.out, { lesionsPerClass: mix, seed: o.seed, onProgress: progressLine('synth ham10000: images') });
  process.stdout.write(
    `wrote ${w.rows.length} images of ${w.lesions} lesions to ${o.out} (${HAM10000_METADATA}, ${HAM10000_PARTS.join(', ')})\n` +
      `  data: { kind: ham10000, root: ${o.out} }\n`,
  );
}

/** Adds `synth slides` and `synth ham10000` to the program. */
export function addSynthCommand(program: Command, log: Log): void {
  const synth = program.command('synth').description('write generated data in the real formats (try the pathology and HAM10000 presets offline)');
  const slides = SlidesSchema.parse({});
  synth
    .command('slides')
    .description('procedural pathology slides cut into patches: DIR/patches/<slide>_<x>_<y>.png (unlabelled, x/y in pixels) and DIR/labelled/<slide>/<class>/*.png')
    .requiredOption('--out <dir>', 'output folder')
    .option('--seed <n>', 'seed of every random draw', integer, 0)
    .option('--train-slides <n>', 'slides cut into unlabelled patches (data.kind patches)', integer, slides.train_slides)
    .option('--eval-slides <n>', 'slides cut into labelled patches (data.labelled; one is the held-out group)', integer, slides.eval_slides)
    .option('--grid <n>', 'patches per slide side', integer, slides.grid)
    .option('--patch-size <n>', 'patch side in pixels', integer, 128)
    .option('--classes <n>', 'tissue classes (2-9)', integer, slides.classes)
    .option('--force', 'replace patches/ and labelled/ in an existing folder')
    .action((opts: SlidesOptions) => synthSlides(opts, log));
  synth
    .command('ham10000')
    .description('a HAM10000-format folder: HAM10000_metadata.csv and 600x450 JPEGs of procedural lesions (7 dx classes, 1-3 images per lesion)')
    .requiredOption('--out <dir>', 'output folder')
    .option('--lesions <n>', 'lesions in all (at least 7), mixed like the release with at least 5 per class', integer, 100)
    .option('--seed <n>', 'seed of every random draw', integer, 0)
    .option('--force', `replace the CSV and the image folders in an existing folder`)
    .action((opts: HamOptions) => synthHam(opts, log));
}
