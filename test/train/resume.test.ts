import { rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { encodeSafetensors } from '../../src/io/safetensors.js';
import { epochCheckpointName, saveCheckpoint } from '../../src/train/checkpoint.js';
import { findResumePoint } from '../../src/train/resume.js';
import { RunDir } from '../../src/train/run_dir.js';
import { UserError } from '../../src/util/errors.js';
import { useCpuBackend } from '../helpers.js';
import { tempDir } from '../io/tmp.js';
import { tinyConfig, tinyModel } from '../model/tiny.js';

beforeAll(useCpuBackend);

/** A run with epoch checkpoints 1..epochs (4 steps each) and `last` at the newest, plus metrics up to `reached`. */
async function savedRun(epochs: number, reached?: number): Promise<RunDir> {
  const run = new RunDir(tempDir());
  const config = tinyConfig();
  const model = tinyModel(1, config);
  for (let epoch = 1; epoch <= epochs; epoch++) {
    const state = { epoch, step: 4 * epoch, config, normalization: 'imagenet' as const, engine: 'cpu' };
    await saveCheckpoint(run.root, { store: model.store, state, keep: true });
  }
  model.store.dispose();
  if (reached !== undefined) {
    const lines = Array.from({ length: reached }, (_, i) => JSON.stringify({ kind: 'train', step: i + 1, loss: -0.1 }));
    writeFileSync(run.metrics, `${lines.join('\n')}\n{"kind":"train","st`);
  }
  return run;
}

const epochFile = (run: RunDir, epoch: number) => join(run.checkpoints, epochCheckpointName(epoch));

/** Cuts a file short, as a full disk or an interrupted copy would. */
const truncate = (path: string) => truncateSync(path, 100);

async function refusal(run: RunDir): Promise<string> {
  const err = await findResumePoint(run).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(UserError);
  expect((err as Error).message).not.toMatch(/\n/);
  return (err as Error).message;
}

describe('findResumePoint', () => {
  it('takes last when it reads back whole, without a word', async () => {
    const run = await savedRun(2, 8);
    const point = await findResumePoint(run);
    expect(point.path).toBe(run.lastCheckpoint);
    expect(point.checkpoint.state.step).toBe(8);
    expect(point.note).toBeUndefined();
  });

  it('a damaged last: the newest intact epoch file, in one line with the reason and how far back the run goes', async () => {
    const run = await savedRun(2, 11);
    truncate(run.lastCheckpoint);
    const point = await findResumePoint(run);
    expect(point.path).toBe(epochFile(run, 2));
    expect(point.checkpoint.state).toMatchObject({ epoch: 2, step: 8 });
    expect(point.note).not.toMatch(/\n/);
    expect(point.note).toBe(
      `--resume: ${run.lastCheckpoint} is damaged (header length ${point.note!.match(/header length (\d+)/)![1]} exceeds the 92 bytes after the length field); ` +
        `resuming from ${epochFile(run, 2)} (epoch 2, step 8); the run goes back 3 steps, from step 11 (the last in metrics.jsonl), and trains them again`,
    );
  });

  it('passes over every damaged newer file and names each', async () => {
    const run = await savedRun(3, 12);
    writeFileSync(run.lastCheckpoint, 'not a checkpoint at all');
    const metadata = encodeSafetensors([], { format: 'pt', simtrip: '{"epoch": 3,' });
    writeFileSync(epochFile(run, 3), Buffer.concat(metadata.map((c) => Buffer.from(c))));
    const point = await findResumePoint(run);
    expect(point.path).toBe(epochFile(run, 2));
    expect(point.note).toMatch(new RegExp(`^--resume: ${run.lastCheckpoint} is damaged \\(header length \\d+ exceeds .*\\); ${epochFile(run, 3)} is damaged \\(checkpoint metadata is not valid JSON`));
    expect(point.note).toMatch(/resuming from .*epoch-0002\.safetensors \(epoch 2, step 8\); the run goes back 4 steps, from step 12/);
  });

  it('a missing last with epoch files beside it; without metrics the line still says where the run goes back to', async () => {
    const run = await savedRun(2);
    rmSync(run.lastCheckpoint);
    const point = await findResumePoint(run);
    expect(point.path).toBe(epochFile(run, 2));
    expect(point.note).toBe(
      `--resume: ${run.lastCheckpoint} is missing; resuming from ${epochFile(run, 2)} (epoch 2, step 8); the run goes back to step 8, and any training after it is done again`,
    );
  });

  it('an epoch file as new as the damaged last loses nothing, and says so', async () => {
    const run = await savedRun(2, 8);
    truncate(run.lastCheckpoint);
    expect((await findResumePoint(run)).note).toMatch(/\(epoch 2, step 8\), where metrics\.jsonl ends: no trained step is lost$/);
  });

  it('refuses when nothing reads back whole, naming every file and why', async () => {
    const run = await savedRun(1, 4);
    truncate(run.lastCheckpoint);
    truncate(epochFile(run, 1));
    const message = await refusal(run);
    expect(message).toContain(`--resume: no checkpoint in ${run.checkpoints} reads back whole (${run.lastCheckpoint}: header length`);
    expect(message).toContain(`; ${epochFile(run, 1)}: header length`);
    expect(message).toContain('start again in another --run-dir');
  });

  it('a run without any checkpoint', async () => {
    expect(await refusal(new RunDir(tempDir()))).toMatch(/^--resume: no checkpoint at .*last\.safetensors; start the run without --resume$/);
  });
});
