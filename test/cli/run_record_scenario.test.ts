/**
 * The run directory as a record, played through as a user would, with real processes: a run killed
 * with kill -9, evaluated while its dead lock is still there, resumed (taking the stale lock over),
 * refused to a concurrent --resume, reported on while it trains, stopped with Ctrl-C, resumed to the
 * end, evaluated again on other data, and reported. Nothing may be lost or logged twice, and the
 * report must match the records.
 *
 * The resumed run is paused (SIGSTOP) while the second writer and the report run, so the test does
 * not depend on how fast the engine trains: the paused process still holds the lock.
 */
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TAGS } from '../../src/report/tensorboard/tags.js';
import { allEvents, computedScalars, expectedScalars, otherValues, scalarTable } from '../report/tb_events.js';
import { tensorsOf, timingless } from '../train/helpers.js';
import { scratchDir } from '../data/fixtures.js';
import { bundleCli, runCliProcess, startCli } from './built_cli.js';

const CONFIG = `
name: scenario
seed: 2
engine: { backend: auto }
data: { kind: synthetic, image_size: 16, synthetic: { train_size: 80, test_size: 20, size: 16 } }
model: { arch: resnet18, stem: cifar, width: 4 }
method: { proj_layers: 2, proj_dim: 16, pred_hidden: 4 }
train: { epochs: 3, batch_size: 10, checkpoint_every: 1, knn_every: 1, log_every: 3 }
eval: { batch_size: 20, knn: { k: 5 }, linear: { epochs: 3, batch_size: 10 } }
`;

type Line = Record<string, unknown>;
const lines = (dir: string): Line[] =>
  readFileSync(join(dir, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Line);

describe('a run directory is a record that nothing corrupts', () => {
  let cli: string;
  let cwd: string;
  const cfg = () => ['--config', join(cwd, 'scenario.yaml')];

  beforeAll(() => {
    cli = bundleCli();
    cwd = scratchDir('simtrip-scenario-');
    writeFileSync(join(cwd, 'scenario.yaml'), CONFIG);
  });
  afterAll(() => rmSync(dirname(cli), { recursive: true, force: true }));

  it('kill -9, eval, resume with a concurrent --resume and a report, Ctrl-C, resume, eval on other data, report', async () => {
    const reference = join(cwd, 'reference');
    const run = join(cwd, 'run');
    const full = await runCliProcess(cli, ['train', ...cfg(), '--run-dir', reference], cwd);
    expect(full.code, full.output).toBe(0);

    // kill -9 inside epoch 2: `last` is epoch 1's checkpoint (or 2's, had the kill come late) and the lock is left behind.
    const first = startCli(cli, ['train', ...cfg(), '--run-dir', run], cwd);
    await first.waitFor(/epoch 2\/3 step 2\/8/);
    first.child.kill('SIGKILL');
    expect((await first.exited).signal).toBe('SIGKILL');
    expect(readdirSync(run)).toContain('train.lock');
    const killedAt = lines(run).at(-1)!.step as number;

    // Readers never take the lock: eval works on the run while its dead holder's lock is there.
    const early = await runCliProcess(cli, ['eval', ...cfg(), '--checkpoint', run, '--linear-probe', '--knn', '--label-fraction', '0.5,1'], cwd);
    expect(early.code, early.output).toBe(0);
    expect(early.output).toMatch(/-> .*evals \(3 new, 0 replaced\)/);
    const earlyRecords = readdirSync(join(run, 'evals'));
    expect(earlyRecords.every((id) => id.includes(`-step${killedAt}-`))).toBe(true);

    // --resume takes over the dead process's lock in one line; a second --resume is refused meanwhile.
    const resumed = startCli(cli, ['train', ...cfg(), '--run-dir', run, '--resume'], cwd);
    await resumed.waitFor(new RegExp(`resumed at the start of epoch ${killedAt / 8 + 1}/3, step ${killedAt}\\)`));
    await resumed.waitFor(/epoch 3\/3 step 1\/8/);
    resumed.child.kill('SIGSTOP');
    expect(resumed.output()).toMatch(new RegExp(`lock: .* was locked by PID ${first.child.pid} on host .*, but process ${first.child.pid} is no longer running; taking the lock over`));
    const second = await runCliProcess(cli, ['train', ...cfg(), '--run-dir', run, '--resume'], cwd);
    expect(second.code).toBe(2);
    expect(second.output).toMatch(new RegExp(`is being trained by another process \\(PID ${resumed.child.pid} on host .+, started \\d{4}-`));
    const report = await runCliProcess(cli, ['report', run], cwd);
    expect(report.code, report.output).toBe(0);

    // Ctrl-C inside epoch 3 (delivered as the paused run continues), then --resume to the end.
    resumed.child.kill('SIGINT');
    resumed.child.kill('SIGCONT');
    expect((await resumed.exited).code).toBe(130);
    const stoppedAt = Number(/stopped \(SIGINT\) at step (\d+); saved .*last\.safetensors; continue with --resume/.exec(resumed.output())![1]);
    expect(stoppedAt).toBeGreaterThanOrEqual(17);
    expect(stoppedAt).toBeLessThan(24);
    expect(resumed.output()).toMatch(/stopped after \d+s/);
    const last = await runCliProcess(cli, ['train', ...cfg(), '--run-dir', run, '--resume'], cwd);
    expect(last.code, last.output).toBe(0);
    expect(last.output).toContain(`resumed in epoch 3/3 after its step ${stoppedAt - 16} of 8, step ${stoppedAt} overall`);

    // An eval on other data than the run trained on: allowed, labelled, and added beside the first ones.
    const other = await runCliProcess(cli, ['eval', ...cfg(), '--checkpoint', run, '--knn', '--set', 'data.synthetic.train_size=60'], cwd);
    expect(other.code, other.output).toBe(0);
    expect(other.output).toMatch(/\[other data than trained on: data\.synthetic\.train_size 60 \(trained on 80\)\] -> .*\(1 new, 0 replaced\)/);
    // A finished run resumed: complete, nothing touched.
    const done = await runCliProcess(cli, ['train', ...cfg(), '--run-dir', run, '--resume'], cwd);
    expect(done.code).toBe(0);
    expect(done.output).toMatch(/is complete: .*--set train\.epochs=N/);
    const final = await runCliProcess(cli, ['report', run], cwd);
    expect(final.code, final.output).toBe(0);

    // No step logged twice, and the log is the uninterrupted run's, line for line, timings aside.
    const logged = lines(run).map((l) => `${l.kind}@${l.step}`);
    expect(new Set(logged).size).toBe(logged.length);
    expect(lines(run).map(timingless)).toEqual(lines(reference).map(timingless));
    const a = await tensorsOf(join(reference, 'checkpoints', 'last.safetensors'));
    const b = await tensorsOf(join(run, 'checkpoints', 'last.safetensors'));
    for (const [name, values] of a) expect(b.get(name), name).toEqual(values);

    // No result lost: the first eval's records are still there beside the second's.
    const records = readdirSync(join(run, 'evals'));
    expect(records).toEqual(expect.arrayContaining(earlyRecords));
    expect(records).toHaveLength(earlyRecords.length + 1);

    // The report matches the records: a row and a confusion map for each, and no other confusion map.
    const md = readFileSync(join(run, 'report', 'summary.md'), 'utf8');
    for (const id of records) {
      expect(md).toContain(`| \`${id}\` |`);
      expect(md).toContain(`](confusion-${id}.png)`);
    }
    const maps = readdirSync(join(run, 'report')).filter((f) => f.startsWith('confusion-') && f.endsWith('.png'));
    expect(maps.sort()).toEqual(records.map((id) => `confusion-${id}.png`).sort());
    expect(md).toContain('(other data than trained on)');
    expect(md).toContain('| final loss (mean over epoch 3) |');
    expect(readdirSync(run).filter((f) => f.startsWith('train.lock'))).toEqual([]);

    // TensorBoard: after the kill, the Ctrl-C and the resumes, the run's training events are its
    // metrics.jsonl, no (tag, step) twice, and the uninterrupted run's (timings aside), view grids too;
    // each evaluation's scores sit at its checkpoint's step, equal to its records.
    const events = await allEvents(join(run, 'tb'));
    const table = scalarTable(events);
    const training = new Map([...table].filter(([k]) => !k.startsWith('probe/')));
    expect(training).toEqual(expectedScalars(lines(run)));
    const referenceEvents = await allEvents(join(reference, 'tb'));
    expect(computedScalars(training)).toEqual(computedScalars(scalarTable(referenceEvents)));
    const grids = (evs: typeof events) => [...otherValues(evs)].filter(([k]) => k.startsWith(`${TAGS.views}@`)).map(([k, v]) => [k, v.image!.encoded_image_string.toString('base64')]);
    expect(grids(events).map(([k]) => k)).toEqual([`${TAGS.views}@1`, `${TAGS.views}@9`, `${TAGS.views}@17`]);
    expect(grids(events)).toEqual(grids(referenceEvents));
    for (const id of earlyRecords) {
      const record = JSON.parse(readFileSync(join(run, 'evals', id, 'record.json'), 'utf8')) as { result: { classifier: string; label_fraction: number; metrics: Record<string, number> } };
      const name = record.result.classifier === 'knn' ? 'knn' : `linear_${record.result.label_fraction * 100}pct`;
      expect(table.get(`probe/${name}/balanced_accuracy@${killedAt}`), id).toBe(Math.fround(record.result.metrics.balanced_accuracy!));
    }
    expect([...table.keys()].filter((k) => /^probe\/knn_data-[0-9a-f]{8}\/accuracy@24$/.test(k))).toHaveLength(1);
  }, 300_000);
});
