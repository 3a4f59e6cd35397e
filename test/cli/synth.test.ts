import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { DataSchema } from '../../src/config/schema.js';
import { HAM10000_CLASS_NAMES } from '../../src/data/ham10000.js';
import { loadDataSplits } from '../../src/data/index.js';
import { parseCsv } from '../../src/data/csv.js';
import { resetExitCodeAfterEach, runCli } from './run_cli.js';

const run = runCli;
resetExitCodeAfterEach();

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'simtrip-synth-'));
});

const TINY_SLIDES = ['--grid', '4', '--patch-size', '16', '--train-slides', '2', '--eval-slides', '2', '--classes', '3', '--seed', '5'];

describe('simtrip synth slides', () => {
  it('writes patches and labelled patches that load back as the in-memory slides', async () => {
    const out = join(dir, 'slides');
    const r = await run('synth', 'slides', '--out', out, ...TINY_SLIDES);
    expect(r.code).toBe(0);
    const m = /wrote (\d+) unlabelled patches of 2 slides to (.+) and (\d+) labelled patches of 2 slides to (.+)\n/.exec(r.stdout)!;
    expect(m).not.toBeNull();
    expect(m[2]).toBe(join(out, 'patches'));
    expect(r.stdout).toContain(`data: { kind: patches, root: ${join(out, 'patches')}, image_size: 16, labelled: { root: ${join(out, 'labelled')} } }`);
    expect(r.stderr).toContain('synth slides: rendering 2 train + 2 eval slides of 64x64 px');
    expect(readdirSync(join(out, 'patches')).every((f) => /^train-slide-0[01]_\d+_\d+\.png$/.test(f))).toBe(true);

    const files = DataSchema.parse({
      kind: 'patches',
      root: join(out, 'patches'),
      image_size: 16,
      cache_dir: join(dir, 'cache'),
      labelled: { root: join(out, 'labelled') },
    });
    const loaded = await loadDataSplits(files, 5);
    expect(loaded.train.size).toBe(Number(m[1]));
    expect(loaded.probeTrain!.size + loaded.test.size).toBe(Number(m[3]));
    expect(loaded.neighbours!.isolated).toBeLessThan(loaded.train.size);
    // The same seed and settings generated in memory give the same patches, pixel for pixel (PNG is lossless).
    const memory = await loadDataSplits(DataSchema.parse({ kind: 'synthetic_slides', image_size: 16, slides: { grid: 4, patch_size: 16, train_slides: 2, eval_slides: 2, classes: 3 } }), 5);
    expect(memory.train.size).toBe(loaded.train.size);
    expect(Buffer.from((loaded.train as unknown as { pixels: Uint8Array }).pixels).equals(Buffer.from((memory.train as unknown as { pixels: Uint8Array }).pixels))).toBe(true);
    // The folder loader orders classes by name; the generator by its tissue table.
    expect([...loaded.test.classNames]).toEqual([...memory.test.classNames].sort());
    expect(loaded.test.groupNames).toEqual(['eval-slide-01']);

    // The labelled folder alone is a data.kind folder with slides as groups.
    const folder = await loadDataSplits(DataSchema.parse({ kind: 'folder', root: join(out, 'labelled'), image_size: 16, cache_dir: join(dir, 'cache') }), 5);
    expect(folder.description).toContain('grouped');
    expect(folder.description).toContain('held-out group eval-slide-01');
  });

  it('refuses a non-empty --out unless --force, which replaces only what synth writes', async () => {
    const out = join(dir, 'occupied');
    mkdirSync(join(out, 'patches'), { recursive: true });
    writeFileSync(join(out, 'patches', 'stale_0_0.png'), 'old');
    writeFileSync(join(out, 'notes.txt'), 'mine');
    const refused = await run('synth', 'slides', '--out', out, ...TINY_SLIDES);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/--out .*occupied: folder exists and is not empty \(notes\.txt, patches\); .*--force to replace patches, labelled/);
    expect(existsSync(join(out, 'labelled'))).toBe(false);

    const forced = await run('synth', 'slides', '--out', out, ...TINY_SLIDES, '--force');
    expect(forced.code).toBe(0);
    expect(existsSync(join(out, 'patches', 'stale_0_0.png'))).toBe(false);
    expect(readFileSync(join(out, 'notes.txt'), 'utf8')).toBe('mine');

    const file = join(dir, 'a-file');
    writeFileSync(file, 'x');
    const notDir = await run('synth', 'slides', '--out', file, ...TINY_SLIDES);
    expect(notDir.code).toBe(2);
    expect(notDir.stderr).toContain('exists and is not a folder');
  });

  it('rejects bad values with exit 2 and the flag name', async () => {
    const out = join(dir, 'never');
    const grid = await run('synth', 'slides', '--out', out, '--grid', '1');
    expect(grid.code).toBe(2);
    expect(grid.stderr).toMatch(/--grid: .*greater than or equal to 2/);
    const size = await run('synth', 'slides', '--out', out, '--patch-size', 'big');
    expect(size.code).toBe(2);
    expect(size.stderr).toMatch(/--patch-size.*'big' is invalid.*integer/);
    expect((await run('synth', 'slides')).code).toBe(2);
    expect((await run('synth', 'tiles', '--out', out)).code).toBe(2);
    expect(existsSync(out)).toBe(false);
  });
});

describe('simtrip synth ham10000', () => {
  it('writes a HAM10000 folder that the ham10000 loader reads, lesions never split', async () => {
    const out = join(dir, 'ham');
    const r = await run('synth', 'ham10000', '--out', out, '--lesions', '14', '--seed', '3');
    expect(r.code).toBe(0);
    const m = /wrote (\d+) images of 14 lesions to (.+) \(HAM10000_metadata\.csv, HAM10000_images_part_1, HAM10000_images_part_2\)\n/.exec(r.stdout)!;
    expect(m).not.toBeNull();
    expect(r.stdout).toContain(`data: { kind: ham10000, root: ${out} }`);
    expect(r.stderr).toContain('synth ham10000: 14 lesions (akiec 2, bcc 2, bkl 2, df 2, mel 2, nv 2, vasc 2)');
    expect(r.stderr).toContain(`synth ham10000: images: ${m[1]}/${m[1]}`);

    const records = parseCsv(readFileSync(join(out, 'HAM10000_metadata.csv'), 'utf8'));
    expect(records[0]!.fields).toEqual(['lesion_id', 'image_id', 'dx', 'dx_type', 'age', 'sex', 'localization']);
    const rows = records.slice(1).map((rec) => rec.fields);
    expect(rows).toHaveLength(Number(m[1]));
    const lesions = new Set(rows.map((f) => f[0]));
    expect(lesions.size).toBe(14);
    // Several images per lesion on average, and both image folders used.
    expect(rows.length).toBeGreaterThan(1.5 * lesions.size);
    expect(readdirSync(join(out, 'HAM10000_images_part_1')).length).toBeGreaterThan(0);
    expect(readdirSync(join(out, 'HAM10000_images_part_2')).length).toBeGreaterThan(0);

    const runDir = join(dir, 'ham-run');
    mkdirSync(runDir);
    const splits = await loadDataSplits(DataSchema.parse({ kind: 'ham10000', root: out, image_size: 24, cache_dir: join(dir, 'cache') }), 1, { runDir });
    expect(splits.train.size + splits.val!.size + splits.test.size).toBe(rows.length);
    expect(existsSync(join(runDir, 'split.json'))).toBe(true);
    const dxOf = new Map(rows.map((f) => [f[1]!, f[2]!]));
    const lesionOf = new Map(rows.map((f) => [f[1]!, f[0]!]));
    const sideOfLesion = new Map<string, string>();
    for (const [side, ds] of [['train', splits.train], ['val', splits.val!], ['test', splits.test]] as const) {
      ds.sources!.forEach((path, i) => {
        const id = path.replace(/^.*\/(ISIC_\d+)\.jpg$/, '$1');
        expect(HAM10000_CLASS_NAMES[ds.labels[i]!]).toBe(dxOf.get(id));
        const lesion = lesionOf.get(id)!;
        expect(sideOfLesion.get(lesion) ?? side).toBe(side);
        sideOfLesion.set(lesion, side);
      });
    }
  });

  it('rejects too few lesions and a non-empty folder', async () => {
    const few = await run('synth', 'ham10000', '--out', join(dir, 'few'), '--lesions', '6');
    expect(few.code).toBe(2);
    expect(few.stderr).toContain('--lesions: got 6, need at least 7');
    const out = join(dir, 'busy');
    mkdirSync(out);
    writeFileSync(join(out, 'HAM10000_metadata.csv'), 'old');
    const busy = await run('synth', 'ham10000', '--out', out, '--lesions', '7');
    expect(busy.code).toBe(2);
    expect(busy.stderr).toContain('--force to replace HAM10000_metadata.csv, HAM10000_images_part_1, HAM10000_images_part_2');
  });
});
