/**
 * `simtrip predict` with the probe `simtrip eval --linear-probe` kept: on the held-out group's images
 * it gives exactly the predictions eval scored (its confusion matrix), for the split protocol and for
 * the leave-one-group-out ensemble; it refuses a probe of other weights, finds probes by id or its
 * start, and lists them when a name matches none or several.
 */
import { cpSync, existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { fittedProbabilities } from '../../src/eval/fitted_probe.js';
import { roundToFloat16InPlace } from '../../src/io/float16.js';
import { readNpy } from '../../src/io/npy.js';
import type { LinearResult } from '../../src/eval/protocols.js';
import { PROBE_INFO_FILE, PROBE_TENSORS_FILE, readSavedProbe } from '../../src/eval/saved_probe.js';
import { recordDir, type EvalRecord } from '../../src/eval/records.js';
import { resetExitCodeAfterEach, runCli } from '../cli/run_cli.js';
import { useCpuBackend } from '../helpers.js';
import { tempDir } from '../io/tmp.js';
import { CLASSES, HOLDOUT, probeRunWithProbes, readPredictions, writeCheckpoint, type ProbeRun } from './probe_run.js';

beforeAll(useCpuBackend);
resetExitCodeAfterEach();

/** predict on each class folder of the held-out group: the confusion matrix of its predictions. */
async function predictedConfusion(run: ProbeRun, record: EvalRecord, checkpoint = run.dir): Promise<number[][]> {
  const cm = CLASSES.map(() => CLASSES.map(() => 0));
  for (const [t, cls] of CLASSES.entries()) {
    const out = join(tempDir(), `${cls}.csv`);
    const r = await runCli('predict', '--checkpoint', checkpoint, '--probe', record.id, '--images', join(run.root, HOLDOUT, cls), '--out', out);
    expect(r.stderr).not.toMatch(/simtrip: /);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^predicted 6 images with probe ${record.id} -> .*${cls}\\.csv \\(blue \\d+, red \\d+\\)$`, 'm'));
    const { header, rows } = readPredictions(out);
    expect(header).toEqual(['file', 'predicted', 'p_blue', 'p_red']);
    expect(rows.map((row) => row.file)).toEqual(['img00.png', 'img01.png', 'img02.png', 'img03.png', 'img04.png', 'img05.png']);
    for (const row of rows) {
      expect(row.p.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
      expect(row.predicted).toBe(CLASSES[row.p.indexOf(Math.max(...row.p))]);
      cm[t]![CLASSES.indexOf(row.predicted)]!++;
    }
  }
  return cm;
}

describe('simtrip predict', () => {
  let run: ProbeRun;
  let split: EvalRecord;
  let logo: EvalRecord;
  beforeAll(async () => {
    ({ run, split, logo } = await probeRunWithProbes());
  }, 120_000);

  it('eval keeps each probe beside its record: weights, classes, fraction, standardisation, checkpoint, preprocessing', async () => {
    for (const record of [split, logo]) {
      expect(existsSync(join(recordDir(run.dir, record.id), PROBE_TENSORS_FILE))).toBe(true);
      const { info, fitted } = await readSavedProbe(recordDir(run.dir, record.id));
      expect(info).toMatchObject({
        record_id: record.id,
        class_names: CLASSES,
        label_fraction: 1,
        feature_dim: 32,
        encoder: { kind: 'checkpoint', path: 'checkpoints/last.safetensors', step: 30 },
        preprocessing: { image_size: 16, normalization: 'imagenet', mean: [0.485, 0.456, 0.406] },
      });
      expect(info.encoder.fingerprint).toMatch(/^sha256:[0-9a-f]{64}$/);
      expect(info.test.balanced_accuracy).toBe(record.result.metrics.balanced_accuracy);
      for (const m of fitted.members) expect([m.probe.mean?.length, m.probe.std?.length]).toEqual([32, 32]);
    }
    const logoProbe = await readSavedProbe(recordDir(run.dir, logo.id));
    expect(logoProbe.info).toMatchObject({ protocol: 'logo', combine: 'mean of softmax probabilities', features: { dtype: 'float16' } });
    expect(logoProbe.info.members.map((m) => [m.name, m.held_out_group, m.fitted_on])).toEqual([
      ['fold g1', 'g1', 12],
      ['fold g2', 'g2', 12],
    ]);
    // Every fold has its own standardisation (the statistics of what it was fitted on).
    expect(logoProbe.fitted.members[0]!.probe.mean).not.toEqual(logoProbe.fitted.members[1]!.probe.mean);
    const splitProbe = await readSavedProbe(recordDir(run.dir, split.id));
    expect(splitProbe.info).toMatchObject({ protocol: 'split', combine: 'single probe', features: { dtype: 'float32' } });
    expect(splitProbe.info.members).toHaveLength(1);
  });

  it.each(['split', 'logo'] as const)("%s: predict on the test split's images gives eval's confusion matrix", async (protocol) => {
    const record = protocol === 'split' ? split : logo;
    const metrics = (record.result as LinearResult).metrics;
    const cm = await predictedConfusion(run, record);
    expect(cm).toEqual(metrics.confusion_matrix);
    // The probe is not trivially right or wrong here, so the comparison means something.
    expect(metrics.accuracy).toBeGreaterThan(0.5);
    expect(metrics.accuracy).toBeLessThan(1);
  });

  it("logo on cached features: predict's probabilities are the fold ensemble's on features rounded to float16, as eval's were", async () => {
    const images = join(run.root, HOLDOUT, 'red');
    const npy = join(tempDir(), 'f.npy');
    expect((await runCli('embed', '--config', run.yaml, '--checkpoint', run.dir, '--images', images, '--out', npy)).code).toBe(0);
    const x = (await readNpy(npy)).toFloat32();
    const csv = join(tempDir(), 'p.csv');
    expect((await runCli('predict', '--checkpoint', run.dir, '--probe', logo.id, '--images', images, '--out', csv)).code).toBe(0);
    const got = readPredictions(csv).rows.flatMap((r) => r.p);
    const { fitted } = await readSavedProbe(recordDir(run.dir, logo.id));
    const rounded = Array.from(fittedProbabilities(fitted, roundToFloat16InPlace(Float32Array.from(x)), 2));
    const unrounded = Array.from(fittedProbabilities(fitted, x, 2));
    const maxDiff = (a: number[], b: number[]) => Math.max(...a.map((v, i) => Math.abs(v - b[i]!)));
    expect(maxDiff(got, rounded)).toBeLessThan(1e-6);
    expect(maxDiff(got, unrounded)).toBeGreaterThan(1e-6);
  });

  it('a copied run directory keeps its probes: the fingerprint is of the weights, not the path', async () => {
    const copy = join(tempDir(), 'copied-run');
    cpSync(run.dir, copy, { recursive: true });
    expect(await predictedConfusion(run, split, copy)).toEqual((split.result as LinearResult).metrics.confusion_matrix);
  });

  it('refuses a probe fitted on another checkpoint, in one line with exit 2', async () => {
    const other = join(tempDir(), 'other-run');
    await writeCheckpoint(other, { arch: 'resnet18', stem: 'cifar', width: 4 }, { image_size: 16 }, 'imagenet', 99, 60);
    const out = join(tempDir(), 'no.csv');
    const r = await runCli('predict', '--checkpoint', other, '--run-dir', run.dir, '--probe', split.id, '--images', join(run.root, HOLDOUT, 'red'), '--out', out);
    expect(r.code).toBe(2);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`^simtrip: --probe ${split.id}: fitted on checkpoint .*\\(epoch 3, step 30\\), weights sha256:[0-9a-f]{12}, not on checkpoint .*other-run.* \\(weights sha256:[0-9a-f]{12}\\)`));
    expect(existsSync(out)).toBe(false);
  });

  it('takes the start of an id, and lists the probes when a name matches none or several, or none is given', async () => {
    const out = join(tempDir(), 'p.csv');
    const images = join(run.root, HOLDOUT, 'blue');
    const prefix = split.id.slice(0, split.id.length - 6);
    expect((await runCli('predict', '--checkpoint', run.dir, '--probe', prefix, '--images', images, '--out', out)).code).toBe(0);

    const several = await runCli('predict', '--checkpoint', run.dir, '--probe', 'linear-100pct', '--images', images, '--out', out);
    expect(several.code).toBe(2);
    const lines = several.stderr.trim().split('\n');
    expect(lines[0]).toMatch(/^simtrip: --probe: 'linear-100pct' matches 2 probes in .*evals; name one\. The probes there:$/);
    expect(lines).toHaveLength(3);
    expect(lines.find((l) => l.startsWith(`  ${split.id}  `))).toMatch(/ linear 100%, split, test balanced accuracy [\d.]+% \(12 items\), \S+; this encoder$/);
    expect(lines.find((l) => l.startsWith(`  ${logo.id}  `))).toMatch(/ linear 100%, logo ensemble of 2 folds, test balanced accuracy [\d.]+% \(12 items\), \S+; this encoder$/);

    const none = await runCli('predict', '--checkpoint', run.dir, '--probe', 'knn', '--images', images, '--out', out);
    expect(none.stderr).toMatch(/^simtrip: --probe: 'knn' names no probe in .*evals\. The probes there:\n {2}linear-/);
    const unnamed = await runCli('predict', '--checkpoint', run.dir, '--images', images, '--out', out);
    expect(unnamed.stderr).toMatch(/^simtrip: --probe: 2 probes in .*evals were fitted on this encoder; name one\. The probes there:\n/);
    expect([none.code, unnamed.code]).toEqual([2, 2]);
  });

  it("a name several probes start with picks the one of this encoder; the listing names the others' encoders", async () => {
    const copy = join(tempDir(), 'mixed-run');
    cpSync(run.dir, copy, { recursive: true });
    rmSync(recordDir(copy, logo.id), { recursive: true });
    // A random-init probe in the same folder: another encoder.
    const r = await runCli('eval', '--config', run.yaml, '--linear-probe', '--set', 'eval.protocol=split', '--run-dir', copy);
    expect(r.code).toBe(0);
    const images = join(run.root, HOLDOUT, 'blue');
    const out = join(tempDir(), 'p.csv');
    const picked = await runCli('predict', '--checkpoint', copy, '--probe', 'linear-100pct', '--images', images, '--out', out);
    expect(picked.stdout).toContain(`with probe ${split.id} `);
    const listed = await runCli('predict', '--checkpoint', copy, '--probe', 'nothing', '--images', images, '--out', out);
    expect(listed.stderr).toMatch(/\n {2}linear-100pct-random-init-[0-9a-f]{10} {2}linear 100%, split, .*; another encoder: random initialisation \(seed 3\)\n/);
    const other = await runCli('predict', '--checkpoint', copy, '--probe', 'linear-100pct-random', '--images', images, '--out', out);
    expect(other.code).toBe(2);
    expect(other.stderr).toMatch(/^simtrip: --probe linear-100pct-random-init-[0-9a-f]{10}: fitted on random initialisation \(seed 3\), weights sha256:[0-9a-f]{12}, not on checkpoint /);
  });

  it('says what is wrong with --out, --images and a run without probes', async () => {
    const images = join(run.root, HOLDOUT, 'blue');
    const bad = await runCli('predict', '--checkpoint', run.dir, '--images', images, '--out', join(tempDir(), 'p.txt'));
    expect(bad.stderr).toMatch(/^simtrip: --out: got '.*p\.txt', expected a file name ending in \.csv\n$/);
    const empty = await runCli('predict', '--checkpoint', run.dir, '--images', tempDir(), '--out', join(tempDir(), 'p.csv'));
    expect(empty.stderr).toMatch(/^simtrip: --images: no image files/);
    const bare = join(tempDir(), 'bare-run');
    await writeCheckpoint(bare, { arch: 'resnet18', stem: 'cifar', width: 4 }, { image_size: 16 }, 'imagenet', 5);
    const noProbes = await runCli('predict', '--checkpoint', bare, '--images', images, '--out', join(tempDir(), 'p.csv'));
    expect(noProbes.stderr).toMatch(/^simtrip: --probe: no saved probe in .*bare-run\/evals; fit one with simtrip eval --linear-probe/);
    expect([bad.code, empty.code, noProbes.code]).toEqual([2, 2, 2]);
  });
});
