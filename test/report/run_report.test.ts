import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { svgTextRenders } from '../../src/report/png.js';
import { parseMetricsLog, readRun } from '../../src/report/run_data.js';
import { writeRunReport } from '../../src/report/run_report.js';
import { InputFileError } from '../../src/util/errors.js';
import { CLASSES, fakeCheckpoint, fakeEvalReport, writeFakeRecords, writeFakeRun } from './fake_run.js';
import { checkXml, polylines } from './svg_check.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'simtrip-report-'));
  dirs.push(d);
  return d;
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/** Asserts a real PNG whose size is the SVG's beside it; returns its metadata. */
async function expectPng(path: string): Promise<sharp.Metadata> {
  const bytes = readFileSync(path);
  expect([...bytes.subarray(0, 8)]).toEqual(PNG_SIGNATURE);
  const meta = await sharp(bytes).metadata();
  expect(meta.format).toBe('png');
  const svg = readFileSync(path.replace(/\.png$/, '.svg'), 'utf8');
  checkXml(svg);
  const [, w, h] = /<svg [^>]*width="(\d+)" height="(\d+)"/.exec(svg)!;
  expect([meta.width, meta.height]).toEqual([Number(w), Number(h)]);
  return meta;
}

describe('writeRunReport on a SimTriplet run with a leave-one-group-out eval', () => {
  const parent = tempDir();
  const runDir = writeFakeRun(parent, { name: 'triplet', method: 'simtriplet', simtriplet: true, knn: 0.6 });
  const report = writeRunReport(runDir);

  it('writes every chart as PNG beside its SVG, then summary.md', async () => {
    const r = await report;
    expect(r.dir).toBe(join(runDir, 'report'));
    const names = r.files.map((f) => f.slice(r.dir.length + 1));
    // One label-fraction chart for the group of records, one confusion map per record (named by its id).
    expect(names.map((n) => n.replace(/-step40-[0-9a-f]+/, '-step40-ID'))).toEqual([
      'loss.png',
      'lr.png',
      'loss_scale.png',
      'collapse.png',
      'knn.png',
      'label_fraction-step40-ID.png',
      'confusion-linear-1pct-step40-ID.png',
      'confusion-linear-10pct-step40-ID.png',
      'confusion-linear-100pct-step40-ID.png',
      'confusion-knn-step40-ID.png',
      'summary.md',
    ]);
    const ids = readdirSync(join(runDir, 'evals')).sort();
    for (const id of ids) expect(names).toContain(`confusion-${id}.png`);
    for (const f of r.files.filter((p) => p.endsWith('.png'))) {
      const meta = await expectPng(f);
      expect(meta.width).toBeGreaterThan(200);
    }
    expect(readdirSync(r.dir).filter((f) => f.endsWith('.svg'))).toHaveLength(10);
    expect(r.lines).toEqual({ train: 20, epoch: 4, knn: 4, other: 0, malformed: 0 });
  });

  it('draws the loss with its terms, and the loss scale on a log axis', async () => {
    const r = await report;
    const loss = readFileSync(join(r.dir, 'loss.svg'), 'utf8');
    expect(polylines(loss)).toHaveLength(3);
    expect(loss).toContain('>loss_inter</text>');
    expect(loss).toContain('>loss_intra</text>');
    expect(loss).toContain('Training loss and its terms');
    const scale = readFileSync(join(r.dir, 'loss_scale.svg'), 'utf8');
    expect(scale).toContain('>10000</text>');
    expect(scale).toContain('>1e5</text>');
  });

  it('renders text into the PNGs on this system (fonts present), visible as dark pixels in the title', async () => {
    const r = await report;
    expect(r.textRendered).toBe(await svgTextRenders());
    if (!r.textRendered) return; // a font-less system: the summary says so instead (next test)
    // The title band of the loss chart (y 5..25 around the centre) holds dark text pixels.
    const title = await sharp(join(r.dir, 'loss.png')).extract({ left: 200, top: 5, width: 240, height: 20 }).greyscale().raw().toBuffer();
    expect(title.some((v) => v < 100)).toBe(true);
  });

  it('summary.md states the run, the training numbers and every eval table', async () => {
    const r = await report;
    const md = readFileSync(r.summary, 'utf8');
    expect(md).toMatch(/^# Run report: triplet\n/);
    expect(md).toContain('| method | simtriplet |');
    expect(md).toContain('| backbone | resnet18 (cifar stem, width 8) |');
    expect(md).toContain('| precision | mixed16 |');
    expect(md).toContain('| steps | 40 (epoch 4 of 4) |');
    // The epoch mean (the figure the epoch lines print), not the last window's -0.9.
    expect(md).toContain('| final loss (mean over epoch 4) | -0.8100 |');
    expect(md).toContain('| final loss_inter | -0.5050 |');
    expect(md).toContain('| final loss_intra | -0.3050 |');
    expect(md).toContain('| kNN monitor | 60.00% at epoch 4 (best 60.00% at epoch 4) |');
    expect(md).toContain('| loss scale (final) | 32768 |');
    expect(md).toContain('protocol: logo (leave one group out over slideA, slideB');
    // Balanced accuracy 0.4 / 0.6 / 0.9 at 1 / 10 / 100 % labels (fake_run.ts), kNN 0.7.
    expect(md).toMatch(/\| linear \| logo \| 1% \| 1 \| 30 \| 40\.00% \| 40\.00% \| [\d.]+% \| folds bal\. acc\. 40\.00% ± 10\.00%; test = ensemble of 2 fold probes \|/);
    expect(md).toMatch(/\| linear \| logo \| 10% \| 9 \| 30 \| 60\.00% \| 60\.00% \|/);
    expect(md).toMatch(/\| linear \| logo \| 100% \| 90 \| 30 \| 90\.00% \| 90\.00% \|/);
    expect(md).toMatch(/\| kNN \| split \| 100% \| 90 \| 30 \| 70\.00% \| 70\.00% \| [\d.]+% \| k 20, t 0\.1 \|/);
    expect(md).toContain('### Folds: linear 10%');
    expect(md).toMatch(/\| slideA \| 60 \| 30 \| 50\.00% \| 50\.00% \|/);
    expect(md).toMatch(/\| mean ± std \|  \|  \| 60\.00% ± 10\.00% \| 60\.00% ± 10\.00% \|/);
    // Per class for the headline (linear 100 %): 9 of 10 right per class; each class also receives one
    // wrong prediction from the previous class, so precision = 9 / 10 too.
    expect(md).toContain('### Per class: linear 100% (test)');
    // The last column: how many items of the class the probe was fitted on (class_counts in the JSON).
    for (const name of CLASSES) expect(md).toContain(`| ${name} | 90.00% | 90.00% | 90.00% | 10 | 30 |`);
    for (const f of (await report).files.filter((p) => p.endsWith('.png'))) expect(md).toContain(`](${basename(f)})`);
    // Every record is a row naming its id.
    for (const id of readdirSync(join(runDir, 'evals'))) expect(md).toContain(`| \`${id}\` |`);
  });
});

describe('writeRunReport on other runs', () => {
  it('split eval: the selection on val is stated; a run without eval.json gets training charts only', async () => {
    const parent = tempDir();
    const split = writeFakeRun(parent, { name: 'split', eval: { protocol: 'split', fractions: [1] } });
    const md = readFileSync((await writeRunReport(split)).summary, 'utf8');
    expect(md).toContain('protocol: split (probe lr and epoch chosen on val, reported on test)');
    expect(md).toContain('val bal. acc. 80.00% (chosen: base lr 0.1, epoch 17 of 20)');
    expect(md).toContain('labelled samples: 90 train / 15 val / 30 test');

    const bare = writeFakeRun(parent, { name: 'bare', eval: false });
    const r = await writeRunReport(bare);
    expect(r.files.map((f) => f.slice(r.dir.length + 1))).toEqual(['loss.png', 'lr.png', 'collapse.png', 'summary.md']);
    expect(readFileSync(r.summary, 'utf8')).toContain('No evaluation yet');
  });

  it('reads eval reports in the format written before the protocols existed', async () => {
    const parent = tempDir();
    const dir = writeFakeRun(parent, { name: 'old', eval: false });
    const metrics = { accuracy: 0.5, balanced_accuracy: 0.5, macro_f1: 0.4, per_class: [{ name: 'a', precision: 0.5, recall: 0.5, f1: 0.5, support: 2 }, { name: 'b', precision: 0.5, recall: 0.5, f1: 0.3, support: 2 }], confusion_matrix: [[1, 1], [1, 1]] };
    const old = {
      encoder: 'x', config_name: 'old', engine: 'cpu', data: 'd', feature_dim: 4, train_samples: 4, test_samples: 4, class_names: ['a', 'b'], created: 'now',
      results: [
        { protocol: 'linear', settings: { label_fraction: 0.5, train_samples: 2, test_samples: 4, base_lr: 0.1, epochs: 5 }, metrics },
        { protocol: 'knn', settings: { k: 3, t: 0.1, train_samples: 4, test_samples: 4 }, metrics },
      ],
    };
    writeFileSync(join(dir, 'eval.json'), JSON.stringify(old));
    const run = await readRun(dir);
    expect(run.evals[0]!.report.protocol).toBe('split');
    expect(run.evals[0]!.report.results.map((r) => [r.classifier, r.protocol])).toEqual([['linear', 'split'], ['knn', 'split']]);
    const r = await writeRunReport(dir);
    expect(r.files.map((f) => f.slice(r.dir.length + 1))).toContain('confusion-legacy-eval-linear-50.png');
    expect(readFileSync(r.summary, 'utf8')).toMatch(/\| linear \| split \| 50% \| 2 \| 4 \| 50\.00% \| 50\.00% \| 40\.00% \|/);
  });

  it('also covers the eval*.json files of an older simtrip (eval.json first), after the records', async () => {
    const parent = tempDir();
    const dir = writeFakeRun(parent, { name: 'two-evals', eval: { protocol: 'split', fractions: [1] }, legacyEval: true });
    writeFileSync(join(dir, 'eval-random-init.json'), readFileSync(join(dir, 'eval.json')));
    writeFakeRecords(dir, fakeEvalReport({ protocol: 'split', fractions: [0.1] }, fakeCheckpoint(dir, 40, 10)));
    const md = readFileSync((await writeRunReport(dir)).summary, 'utf8');
    const at = (title: string) => md.indexOf(`## Evaluation: ${title}`);
    expect(at('checkpoint checkpoints/last.safetensors at step 40, split protocol')).toBeGreaterThan(0);
    expect(at('eval.json (written by an older simtrip)')).toBeGreaterThan(at('checkpoint checkpoints/last.safetensors at step 40, split protocol'));
    expect(at('eval-random-init.json (written by an older simtrip)')).toBeGreaterThan(at('eval.json (written by an older simtrip)'));
  });

  it('the charts follow the records: a chart whose record is gone, or of an older naming, is removed; other files stay', async () => {
    const parent = tempDir();
    const dir = writeFakeRun(parent, { name: 'stale', eval: { protocol: 'split', fractions: [0.1, 1] } });
    const reportDir = join(dir, 'report');
    mkdirSync(reportDir, { recursive: true });
    for (const old of ['label_fraction.png', 'label_fraction.svg', 'confusion-linear-10.png', 'confusion-knn.svg']) writeFileSync(join(reportDir, old), 'old');
    writeFileSync(join(reportDir, 'my-figure.png'), 'mine');
    await writeRunReport(dir);
    const pngs = () => readdirSync(reportDir).filter((f) => f.endsWith('.png')).sort();
    expect(pngs().filter((f) => f.startsWith('confusion-'))).toEqual(readdirSync(join(dir, 'evals')).map((id) => `confusion-${id}.png`).sort());
    expect(pngs()).toContain('my-figure.png');
    expect(pngs()).not.toContain('label_fraction.png');
    expect(readdirSync(reportDir)).not.toContain('confusion-knn.svg');
    // A record removed by hand: its charts go with it at the next report.
    const gone = readdirSync(join(dir, 'evals')).find((id) => id.startsWith('linear-10pct'))!;
    rmSync(join(dir, 'evals', gone), { recursive: true });
    await writeRunReport(dir);
    expect(readdirSync(reportDir).filter((f) => f.includes(gone))).toEqual([]);
    expect(readFileSync(join(reportDir, 'summary.md'), 'utf8')).not.toContain(gone);
  });

  it('writeRunReport (called by the trainer) writes the report, with the 1/sqrt(d) line from projDim or config.yaml', async () => {
    const parent = tempDir();
    const dir = writeFakeRun(parent, { name: 'trainer', eval: false });
    await writeRunReport(dir, { projDim: 2048 });
    expect(readFileSync(join(dir, 'report', 'collapse.svg'), 'utf8')).toContain('1/sqrt(2048)');
    await writeRunReport(dir);
    expect(readFileSync(join(dir, 'report', 'collapse.svg'), 'utf8')).toContain('1/sqrt(64)'); // method.proj_dim in config.yaml
  });

  it('leaves gaps at NaN losses, keeps the last record of a step logged twice and counts malformed lines', async () => {
    const parent = tempDir();
    const dir = writeFakeRun(parent, { name: 'gaps', eval: false });
    const rows = [
      { kind: 'train', step: 20, loss: 5 },
      { kind: 'train', step: 10, loss: 1 },
      { kind: 'train', step: 20, loss: 2 },
      { kind: 'train', step: 30, loss: null }, // NaN, as JSON writes it
      { kind: 'train', step: 40, loss: 3 },
      { kind: 'train', step: 50, loss: 4 },
      { kind: 'eval', step: 50 },
    ];
    writeFileSync(join(dir, 'metrics.jsonl'), `${rows.map((r) => JSON.stringify(r)).join('\n')}\n{"kind": "train"\n[1]\n`);
    expect(parseMetricsLog(readFileSync(join(dir, 'metrics.jsonl'), 'utf8')).lines).toEqual({ train: 6, epoch: 0, knn: 0, other: 1, malformed: 2 });
    const r = await writeRunReport(dir);
    const lines = polylines(readFileSync(join(r.dir, 'loss.svg'), 'utf8'));
    expect(lines.map((l) => l.length)).toEqual([2, 2]);
    // Losses 1, 2 | 3, 4 at steps 10, 20 | 40, 50: evenly spaced only if step 20 kept its later value 2 (not 5).
    const [[, y10], [, y20]] = lines[0]!;
    const [[, y40]] = lines[1]!;
    expect(y10! - y20!).toBeCloseTo(y20! - y40!, 1);
    const md = readFileSync(r.summary, 'utf8');
    // A log without epoch records: the last window's mean, labelled as such.
    expect(md).toContain('| final loss (mean over the last logged window, steps 41–50) | 4.0000 |');
    expect(md).toContain('2 malformed line(s) of metrics.jsonl were skipped');
  });

  it('draws the predictor\'s lr in the lr chart, not a chart of its own, with the axis above the peak', async () => {
    const parent = tempDir();
    const dir = writeFakeRun(parent, { name: 'predictor-lr', eval: false });
    const rows = [10, 20, 30].map((step) => ({ kind: 'train', step, loss: -step / 100, lr: 0.015 * (1 - step / 40), lr_predictor: 0.015 }));
    writeFileSync(join(dir, 'metrics.jsonl'), `${rows.map((r) => JSON.stringify(r)).join('\n')}\n`);
    const r = await writeRunReport(dir);
    expect(r.files.map((f) => f.slice(r.dir.length + 1))).toEqual(['loss.png', 'lr.png', 'summary.md']);
    const svg = readFileSync(join(r.dir, 'lr.svg'), 'utf8');
    const [backbone, predictor] = polylines(svg);
    expect(predictor!.every(([, y]) => y === predictor![0]![1])).toBe(true);
    expect(svg).toContain('>predictor</text>');
    expect(svg).toContain('>backbone and projector</text>');
    // The constant predictor lr is drawn below the frame's top, not on it.
    const frameTop = Number(/<clipPath id="plot-area"><rect x="[\d.]+" y="([\d.]+)"/.exec(svg)![1]);
    expect(predictor![0]![1]).toBeGreaterThan(frameTop + 5);
    expect(backbone).toHaveLength(3);
  });

  it('charts the other numbers of metrics.jsonl with titles and axes in words, GPU memory now and peak together', async () => {
    const parent = tempDir();
    const dir = writeFakeRun(parent, { name: 'extras', eval: false });
    const rows = [10, 20, 30].map((step) => ({ kind: 'train', step, loss: -step / 100, skipped_steps: step / 10, gpu_mib: 900, gpu_peak_mib: 1200, some_new_count: 1 }));
    writeFileSync(join(dir, 'metrics.jsonl'), `${rows.map((r) => JSON.stringify(r)).join('\n')}\n`);
    const r = await writeRunReport(dir);
    const names = r.files.map((f) => f.slice(r.dir.length + 1));
    expect(names).toEqual(['loss.png', 'lr.png', 'train-skipped_steps.png', 'train-gpu_mib.png', 'train-some_new_count.png', 'summary.md']);
    const skipped = readFileSync(join(r.dir, 'train-skipped_steps.svg'), 'utf8');
    expect(skipped).toContain('>Skipped steps (mixed16 overflows, cumulative)</text>');
    expect(skipped).toContain('>steps skipped so far</text>');
    expect(skipped).not.toContain('>skipped_steps</text>');
    const gpu = readFileSync(join(r.dir, 'train-gpu_mib.svg'), 'utf8');
    expect(polylines(gpu)).toHaveLength(2);
    expect(gpu).toContain('>in use</text>');
    expect(gpu).toContain('>peak so far</text>');
    expect(readFileSync(join(r.dir, 'train-some_new_count.svg'), 'utf8')).toContain('>Some new count</text>');
    expect(readFileSync(r.summary, 'utf8')).toContain('![Skipped steps (mixed16 overflows, cumulative)](train-skipped_steps.png)');
  });

  it('says under each confusion matrix title that the shading is per row', async () => {
    const parent = tempDir();
    const r = await writeRunReport(writeFakeRun(parent, { name: 'cm', eval: { protocol: 'split', fractions: [1] } }));
    const [name] = readdirSync(r.dir).filter((f) => /^confusion-linear-100pct-.*\.svg$/.test(f));
    const svg = readFileSync(join(r.dir, name!), 'utf8');
    expect(svg).toContain('colour: share of the true class (each row sums to 100 %); numbers: counts');
    expect(svg).toContain('>100 %</text>');
  });

  it('a last line still being appended (no newline yet) is not read: neither a record nor malformed', () => {
    const text = `${JSON.stringify({ kind: 'train', step: 1, loss: 1 })}\n{"kind":"train","step":2,"lo`;
    expect(parseMetricsLog(text).lines).toEqual({ train: 1, epoch: 0, knn: 0, other: 0, malformed: 0 });
    expect(parseMetricsLog(`${text}ss":2}\n`).train.map((r) => r.step)).toEqual([1, 2]);
  });

  it('names the missing file of a folder that is not a run', async () => {
    const parent = tempDir();
    const missing = join(parent, 'nope');
    await expect(writeRunReport(missing)).rejects.toThrow(InputFileError);
    await expect(writeRunReport(missing)).rejects.toThrow(`${missing}: no such directory`);
    const noMetrics = join(parent, 'no-metrics');
    mkdirSync(noMetrics);
    writeFileSync(join(noMetrics, 'config.yaml'), 'name: x\n');
    await expect(writeRunReport(noMetrics)).rejects.toThrow(`${join(noMetrics, 'metrics.jsonl')}: no metrics log (metrics.jsonl): not a simtrip run directory`);
    const noConfig = join(parent, 'no-config');
    mkdirSync(noConfig);
    writeFileSync(join(noConfig, 'metrics.jsonl'), '');
    await expect(writeRunReport(noConfig)).rejects.toThrow(join(noConfig, 'config.yaml'));
    writeFileSync(join(noConfig, 'config.yaml'), 'a: [1, 2\n');
    await expect(writeRunReport(noConfig)).rejects.toThrow(/config\.yaml: not valid YAML/);
    writeFileSync(join(noConfig, 'config.yaml'), 'name: x\n');
    writeFileSync(join(noConfig, 'eval.json'), '{"results": 3}');
    await expect(writeRunReport(noConfig)).rejects.toThrow(/eval\.json: not a simtrip eval report/);
  });
});
