/**
 * Which checkpoint `--resume` continues from: `last`, or when `last` does not read back whole (a
 * full disk, a copy cut short, a bad sector: the atomic rename only guards against crashes mid-write),
 * the newest epoch checkpoint that does. Going back to an epoch file costs the steps trained since,
 * so the choice is never silent: one line names the file, what was wrong with the newer one(s), and
 * how far back the run goes.
 */
import { existsSync } from 'node:fs';
import { InputFileError, UserError } from '../util/errors.js';
import { listEpochCheckpoints, readCheckpoint, type LoadedCheckpoint } from './checkpoint.js';
import { MetricsLog } from './metrics_log.js';
import type { RunDir } from './run_dir.js';

export interface ResumePoint {
  checkpoint: LoadedCheckpoint;
  path: string;
  /** Set when a newer checkpoint was passed over: the line to show the user. */
  note?: string;
}

interface Rejected {
  path: string;
  reason: string;
}

/** Reads a checkpoint whole (safetensors header, tensor sizes, simtrip metadata), or says why it cannot. */
async function tryRead(path: string): Promise<LoadedCheckpoint | Rejected> {
  if (!existsSync(path)) return { path, reason: 'missing' };
  try {
    return await readCheckpoint(path);
  } catch (err) {
    if (err instanceof InputFileError) return { path, reason: err.reason };
    throw err;
  }
}

/** The tail of the resume line: how much training resuming at `step` repeats, from what metrics.jsonl says the run reached. */
function howFarBack(step: number, reached: number | undefined): string {
  if (reached === undefined) return `; the run goes back to step ${step}, and any training after it is done again`;
  if (reached <= step) return `, where metrics.jsonl ends: no trained step is lost`;
  return `; the run goes back ${reached - step} steps, from step ${reached} (the last in metrics.jsonl), and trains them again`;
}

export async function findResumePoint(run: RunDir): Promise<ResumePoint> {
  const candidates = [run.lastCheckpoint, ...listEpochCheckpoints(run.root).reverse().map((e) => e.path)];
  if (candidates.length === 1 && !existsSync(run.lastCheckpoint)) {
    throw new UserError(`--resume: no checkpoint at ${run.lastCheckpoint}; start the run without --resume`);
  }
  const rejected: Rejected[] = [];
  for (const path of candidates) {
    const read = await tryRead(path);
    if ('reason' in read) {
      rejected.push(read);
      continue;
    }
    if (rejected.length === 0) return { checkpoint: read, path };
    const { epoch, step } = read.state;
    const reached = await new MetricsLog(run.metrics).lastStep();
    const why = rejected.map((r) => `${r.path} is ${r.reason === 'missing' ? 'missing' : `damaged (${r.reason})`}`).join('; ');
    return {
      checkpoint: read,
      path,
      note: `--resume: ${why}; resuming from ${path} (epoch ${epoch}, step ${step})${howFarBack(step, reached)}`,
    };
  }
  const why = rejected.map((r) => `${r.path}: ${r.reason}`).join('; ');
  throw new UserError(
    `--resume: no checkpoint in ${run.checkpoints} reads back whole (${why}); start again in another --run-dir, or remove ${run.root}`,
  );
}
