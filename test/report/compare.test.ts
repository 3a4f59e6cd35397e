import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { compareRuns, defaultCompareDir, runLabels } from '../../src/report/compare.js';
import { InputFileError, UserError } from '../../src/util/errors.js';
import { writeFakeRun } from './fake_run.js';
import { polylines } from './svg_check.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'simtrip-compare-'));
  dirs.push(d);
  return d;
}

describe('compareRuns', () => {
  const parent = tempDir();
  // Different steps per epoch (batch sizes): the loss is compared per epoch.
  const triplet = writeFakeRun(parent, { name: 'simtriplet', method: 'simtriplet', simtriplet: true, knn: 0.6, steps: 40, stepsPerEpoch: 10 });
  const siam = writeFakeRun(parent, { name: 'simsiam', knn: 0.5, steps: 80, stepsPerEpoch: 20, eval: { protocol: 'logo', fractions: [0.1, 1], knn: false } });
  const out = join(parent, 'cmp');
  const comparison = compareRuns([triplet, siam], out);

  it('writes a side-by-side table with a column pair per label fraction', async () => {
    const c = await comparison;
    const md = readFileSync(c.summary, 'utf8');
    expect(md).toMatch(/^# Comparison: simtriplet vs simsiam\n/);
    const header = md.split('\n').find((l) => l.startsWith('| run |'))!;
    expect(header).toBe(
      '| run | method | backbone | data | epochs | final loss (epoch mean) | kNN monitor | protocol | linear 1% bal. acc. | linear 1% macro F1 | linear 10% bal. acc. | linear 10% macro F1 | linear 100% bal. acc. | linear 100% macro F1 | kNN bal. acc. |',
    );
    const row = (name: string) => md.split('\n').find((l) => l.startsWith(`| ${name} |`))!.split(' | ');
    const t = row('simtriplet');
    expect(t.slice(1, 8)).toEqual(['simtriplet', 'resnet18 (cifar stem, width 8)', 'synthetic_slides 32x32 (320 train / 30 test)', '4', '-0.8100', '60.00%', 'logo']);
    expect([t[8], t[10], t[12], t[14]]).toEqual(['40.00%', '60.00%', '90.00%', '70.00% |']);
    const s = row('simsiam');
    // No 1 % probe and no kNN in simsiam's eval.json: dashes, not zeros.
    expect([s[8], s[9], s[10], s[12], s[14]]).toEqual(['–', '–', '60.00%', '90.00%', '– |']);
    expect(md).toContain('([report](../simsiam/report/summary.md))');
  });

  it('overlays loss per epoch, kNN accuracy and balanced accuracy vs label fraction, as PNGs', async () => {
    const c = await comparison;
    expect(c.files.map((f) => f.slice(out.length + 1))).toEqual(['loss.png', 'knn.png', 'label_fraction.png', 'summary.md']);
    for (const f of c.files.filter((p) => p.endsWith('.png'))) {
      expect([...readFileSync(f).subarray(0, 4)]).toEqual([0x89, 0x50, 0x4e, 0x47]);
      expect((await sharp(f).metadata()).width).toBe(640);
    }
    const loss = readFileSync(join(out, 'loss.svg'), 'utf8');
    expect(loss).toContain('>epoch</text>');
    const [a, b] = polylines(loss);
    // 40 steps at 10 per epoch and 80 at 20 per epoch both end at epoch 4: the same right end.
    expect(a!.at(-1)![0]).toBeCloseTo(b!.at(-1)![0], 5);
    expect(polylines(readFileSync(join(out, 'label_fraction.svg'), 'utf8')).map((l) => l.length)).toEqual([3, 2]);
  });

  it('notes on the loss chart and in the summary that SimSiam and SimTriplet losses sit on different scales', async () => {
    const c = await comparison;
    const loss = readFileSync(join(out, 'loss.svg'), 'utf8');
    expect(loss).toContain("SimTriplet&apos;s loss adds two SimSiam-type terms (-2 to 0), SimSiam&apos;s is one (-1 to 0): compare shapes, not levels</text>");
    expect(loss).toContain('>simtriplet (simtriplet)</text>');
    expect(readFileSync(c.summary, 'utf8')).toContain("Note: the loss chart overlays SimTriplet's loss adds two");
    // Runs of one method need no note.
    const p = tempDir();
    const same = await compareRuns([writeFakeRun(p, { name: 'a' }), writeFakeRun(p, { name: 'b' })], join(p, 'cmp'));
    expect(readFileSync(join(p, 'cmp', 'loss.svg'), 'utf8')).not.toContain('compare shapes');
    expect(readFileSync(same.summary, 'utf8')).not.toContain('Note: the loss chart');
  });

  it('refreshes each run\'s own report, which the table links to', async () => {
    await comparison;
    for (const d of [triplet, siam]) expect(existsSync(join(d, 'report', 'summary.md'))).toBe(true);
  });

  it('checks every run before writing anything', async () => {
    const p = tempDir();
    const good = writeFakeRun(p, { name: 'good' });
    const bad = join(p, 'not-a-run');
    mkdirSync(bad);
    const target = join(p, 'cmp');
    await expect(compareRuns([good, bad], target)).rejects.toThrow(InputFileError);
    await expect(compareRuns([good, bad], target)).rejects.toThrow(bad);
    expect(existsSync(target)).toBe(false);
    expect(existsSync(join(good, 'report'))).toBe(false);
    await expect(compareRuns([good])).rejects.toThrow(UserError);
  });

  it('labels runs by folder name, numbered when two share one; default folder runs/compare-<labels>', () => {
    expect(runLabels(['runs/a', 'runs/b/'])).toEqual(['a', 'b']);
    expect(runLabels(['x/run', 'y/run', 'z/other'])).toEqual(['run#1', 'run#2', 'other']);
    expect(defaultCompareDir(['simsiam', 'bit+simsiam'])).toBe(join('runs', 'compare-simsiam-bit_simsiam'));
  });
});
