/**
 * The smoke presets for the medical experiments, run as a user would: data in the real on-disk
 * formats (generated), `simtrip train` then `simtrip eval` through the CLI, checking that each
 * experiment's own machinery ran (neighbour triplets and mixed16 for pathology, the lesion split and
 * validation model selection for HAM10000) rather than only that the commands exit 0.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { ConfigSchema } from '../../src/config/schema.js';
import { writeHam10000Folder } from '../../src/data/ham10000_writer.js';
import { writeSyntheticSlides } from '../../src/data/synthetic_slides.js';
import { scratchDir } from '../data/fixtures.js';
import { resetExitCodeAfterEach, runCli } from './run_cli.js';

const CONFIGS = fileURLToPath(new URL('../../configs/', import.meta.url));
resetExitCodeAfterEach();

let dir: string;
let slides: { patchesDir: string; labelledDir: string };
let ham: string;

beforeAll(async () => {
  dir = scratchDir('simtrip-smoke-');
  const slideCfg = ConfigSchema.parse({ data: { slides: { train_slides: 2, eval_slides: 3, grid: 8 } } }).data.slides;
  slides = await writeSyntheticSlides(join(dir, 'pathology'), slideCfg, 0);
  ham = join(dir, 'HAM10000');
  await writeHam10000Folder(ham, { lesionsPerClass: [6, 8, 10, 6, 10, 30, 6], seed: 3, width: 40, height: 30 });
}, 120_000);

function metrics(runDir: string): Array<Record<string, unknown>> {
  return readFileSync(join(runDir, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

async function trainAndEval(preset: string, sets: string[]) {
  const runDir = join(dir, 'runs', preset);
  const common = ['-c', join(CONFIGS, `${preset}.yaml`), ...sets.flatMap((s) => ['--set', s]), '--set', `data.cache_dir=${join(dir, 'cache')}`];
  const train = await runCli('train', ...common, '--run-dir', runDir);
  expect(train.code, train.stderr).toBe(0);
  const out = join(runDir, 'smoke-eval.json');
  const evaluation = await runCli('eval', ...common, '--checkpoint', runDir, '--linear-probe', '--knn', '--label-fraction', '0.1,1', '--out', out);
  expect(evaluation.code, evaluation.stderr).toBe(0);
  const report = JSON.parse(readFileSync(out, 'utf8')) as {
    results: Array<{
      classifier: string;
      protocol: string;
      metrics: { balanced_accuracy: number };
      selection?: { val_samples: number; candidates: unknown[] };
    }>;
  };
  expect(existsSync(join(runDir, 'report', 'summary.md'))).toBe(true);
  expect(existsSync(join(runDir, 'report', 'loss.png'))).toBe(true);
  return { runDir, train, report, metrics: metrics(runDir) };
}

describe('smoke presets train and evaluate on files in the real formats', () => {
  const pathologySets = () => [`data.root=${slides.patchesDir}`, `data.labelled.root=${slides.labelledDir}`];

  it('smoke-pathology-simtriplet: neighbour triplets, mixed16, leave-one-slide-out probe', async () => {
    const { train, report, metrics: rows } = await trainAndEval('smoke-pathology-simtriplet', pathologySets());
    expect(train.stderr).toMatch(/simtriplet heads/);
    const steps = rows.filter((r) => r.kind === 'train');
    expect(steps.length).toBeGreaterThan(0);
    for (const r of steps) {
      expect(Number.isFinite(r.loss_inter) && Number.isFinite(r.loss_intra)).toBe(true);
      expect(r.loss_scale).toBeGreaterThan(0);
    }
    const linear = report.results.filter((r) => r.classifier === 'linear');
    expect(linear.map((r) => r.protocol)).toEqual(['logo', 'logo']);
    for (const r of report.results) expect(r.metrics.balanced_accuracy).toBeGreaterThanOrEqual(0);
  }, 180_000);

  it('smoke-pathology-simsiam: the same pipeline with two views', async () => {
    const { train, metrics: rows } = await trainAndEval('smoke-pathology-simsiam', pathologySets());
    expect(train.stderr).toMatch(/simsiam heads/);
    expect(rows.some((r) => r.kind === 'train' && 'loss_inter' in r)).toBe(false);
  }, 180_000);

  it('smoke-ham10000-simsiam: lesion split written to the run, probe selected on validation', async () => {
    const { runDir, report } = await trainAndEval('smoke-ham10000-simsiam', [`data.root=${ham}`]);
    const split = JSON.parse(readFileSync(join(runDir, 'split.json'), 'utf8')) as Record<string, unknown>;
    expect(Object.keys(split).length).toBeGreaterThan(0);
    const linear = report.results.filter((r) => r.classifier === 'linear');
    expect(linear).toHaveLength(2);
    for (const r of linear) {
      expect(r.protocol).toBe('split');
      // Chosen on the validation split among the preset's lr grid, then reported on test.
      expect(r.selection?.val_samples).toBeGreaterThan(0);
      expect(r.selection?.candidates).toHaveLength(2);
    }
  }, 180_000);
});
