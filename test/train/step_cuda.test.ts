/**
 * No synchronisation inside a training step on the CUDA engine (its host build counts them): the
 * update is queued first, gated on the device by a finite check, and every number of the step comes
 * back in one copy, read at once (trainStep: one synchronisation), one step late (queueTrainStep:
 * none), or at once under a loss scaler (its one, as GradScaler's). A non-finite loss leaves the
 * weights as they were without anything read, and the trainer makes no synchronisation between steps
 * whether train.log_every logs a step or not.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ConfigSchema } from '../../src/config/schema.js';
import type { EngineInfo } from '../../src/engine/engine.js';
import { tf } from '../../src/engine/tf.js';
import type { CudaAddon, HostEmulation } from '../../src/engine/cuda/native.js';
import { buildSslModel, type SslModel } from '../../src/model/build.js';
import { LossScaler } from '../../src/optim/loss_scale.js';
import { Sgd } from '../../src/optim/sgd.js';
import { queueTrainStep, trainStep } from '../../src/train/step.js';
import { readCheckpoint } from '../../src/train/checkpoint.js';
import { DivergedError, train } from '../../src/train/trainer.js';
import { Rng } from '../../src/util/rng.js';
import { CUDA_HOST, hostAddon, loadCudaHost } from '../engine/cuda/helpers.js';
import { metricsOf, options, runDir, tensorsOf, timingless, tinyConfig } from './helpers.js';

const load = await loadCudaHost();
const addon = () => hostAddon() as CudaAddon & HostEmulation;

const cfg = ConfigSchema.parse({ model: { arch: 'resnet18', stem: 'cifar', width: 4 }, method: { proj_layers: 2, proj_dim: 16, pred_hidden: 4 } });
const SIDE = 8;

function model(precision: 'fp32' | 'mixed16' = 'fp32'): { m: SslModel; sgd: Sgd } {
  const m = buildSslModel(cfg.model, cfg.method, 4, { precision });
  return { m, sgd: new Sgd(m.store.trainable(), { momentum: 0.9, weightDecay: 5e-4, decayNormAndBias: true }) };
}

function views(fill?: number): Float32Array[] {
  const rng = new Rng('step-cuda', 1);
  return [0, 1].map(() => Float32Array.from({ length: 4 * SIDE * SIDE * 3 }, () => fill ?? rng.normal()));
}

const weights = (m: SslModel) => m.store.trainable().map((p) => p.variable.dataSync().slice());

function dispose(...ms: Array<{ m: SslModel; sgd: Sgd }>): void {
  for (const { m, sgd } of ms) {
    sgd.dispose();
    m.store.dispose();
  }
}

/** Synchronisations (whole-stream waits) and single-read waits while f runs. */
async function syncsOf<T>(f: () => T | Promise<T>): Promise<{ result: T; syncs: number; waits: number }> {
  addon().resetCounters();
  const result = await f();
  const c = addon().counters();
  return { result, syncs: c.syncs, waits: c.eventWaits };
}

afterEach(() => {
  if (load.ok) addon().emulate('clear');
});

describe.skipIf(!load.ok)('synchronisations in a training step on the CUDA host build', () => {
  beforeAll(async () => {
    await tf.setBackend(CUDA_HOST);
  });

  it('fp32: trainStep reads every number in one synchronisation, queueTrainStep in none, with the same step', async () => {
    const a = model();
    const b = model();
    const eager = await syncsOf(() => trainStep(a.m.method, a.m.store, a.sgd, views(), SIDE, () => 0.1));
    expect(eager.syncs).toBe(1);
    // The queued step's numbers come back once their copy has run; the polls say "not yet" twice first.
    addon().emulate('pendingPolls', 2);
    const queued = await syncsOf(() => queueTrainStep(b.m.method, b.m.store, b.sgd, views(), SIDE, () => 0.1).result);
    expect(queued).toMatchObject({ syncs: 0, waits: 0 });
    expect(queued.result).toEqual(eager.result);
    expect(Number.isFinite(eager.result.loss) && eager.result.collapseStd! > 0 && !eager.result.skipped).toBe(true);
    expect(weights(b.m)).toEqual(weights(a.m));
    dispose(a, b);
  });

  it('mixed16: one synchronisation per step, the loss scaler\'s', async () => {
    const a = model('mixed16');
    const step = await syncsOf(() => queueTrainStep(a.m.method, a.m.store, a.sgd, views(), SIDE, () => 0.1, { scaler: new LossScaler() }).result);
    expect(step.syncs).toBe(1);
    expect(step.result.lossScale).toBe(2 ** 16);
    dispose(a);
  });

  it('a non-finite loss: the update is dropped on the device before anything is read', async () => {
    const a = model();
    const before = weights(a.m);
    const queued = queueTrainStep(a.m.method, a.m.store, a.sgd, views(Number.NaN), SIDE, () => 0.1);
    // Read before the step's numbers: the weights are already what the gated update left.
    expect(weights(a.m)).toEqual(before);
    const out = await queued.result;
    expect(Number.isNaN(out.loss)).toBe(true);
    expect(out.skipped).toBe(true);
    // The next good step starts its momentum afresh, as from no buffer.
    const good = trainStep(a.m.method, a.m.store, a.sgd, views(), SIDE, () => 0.1);
    const fresh = model();
    const ref = trainStep(fresh.m.method, fresh.m.store, fresh.sgd, views(), SIDE, () => 0.1);
    expect(good.loss).toBe(ref.loss);
    expect(weights(a.m)).toEqual(weights(fresh.m));
    dispose(a, fresh);
  });
});

describe.skipIf(!load.ok)('the trainer on the CUDA host build', () => {
  const engine: EngineInfo = { requested: 'cuda', engine: 'cuda', tfBackend: CUDA_HOST, skipped: [], detail: 'host build' };
  // log_every 3 over a 4-step epoch: steps 1 and 2 are not logged, 3 and 4 are.
  const config = () => tinyConfig({ epochs: 1, log_every: 3, knn_every: 0 });
  let full: string;

  beforeAll(async () => {
    await tf.setBackend(CUDA_HOST);
  });

  it('synchronises nowhere between two steps, whether train.log_every logs a step or skips it', async () => {
    full = await runDir();
    const syncs: number[] = [];
    addon().resetCounters();
    await train({ ...options(config(), full, { onStep: () => syncs.push(addon().counters().syncs) }), engine });
    // 4 steps in the epoch; between two recorded steps lies a whole step (queued and collected).
    expect(syncs).toHaveLength(4);
    expect(syncs.slice(1).map((s, i) => s - syncs[i]!)).toEqual([0, 0, 0]);
  });

  it('a stop seen one step late saves the step already queued, with the running sums of exactly the steps in its weights: --resume ends as the uninterrupted run, metrics.jsonl line for line', async () => {
    const dir = await runDir();
    const controller = new AbortController();
    // Step 1 is recorded while step 2 runs: the stop lands after step 2, inside the window of steps 1-3.
    const first = await train({ ...options(config(), dir, { signal: controller.signal, onStep: (s) => s === 1 && controller.abort() }), engine });
    expect(first).toMatchObject({ interrupted: 'aborted', steps: 2 });
    const last = join(dir, 'checkpoints', 'last.safetensors');
    const saved = (await readCheckpoint(last)).state;
    expect(saved.step).toBe(2);
    expect(saved.running?.window.steps).toBe(2);
    expect(saved.metrics.last_step_loss).toBe(first.lastLoss);
    await train({ ...options(config(), dir, { resume: true }), engine });
    expect((await metricsOf(dir)).map(timingless)).toEqual((await metricsOf(full)).map(timingless));
    const a = await tensorsOf(join(full, 'checkpoints', 'last.safetensors'));
    const b = await tensorsOf(last);
    for (const [name, values] of a) expect(b.get(name), name).toEqual(values);
  });

  it('a non-finite loss seen one step late, on an epoch\'s last step, stops the run before the epoch\'s checkpoint', async () => {
    const dir = await runDir();
    // Two steps an epoch; an absurd lr overflows the weights in step 1, so step 2's loss is NaN.
    const base = tinyConfig({ epochs: 2, base_lr: 1e38, warmup_epochs: 0, knn_every: 0, log_every: 1 });
    const exploding = { ...base, data: { ...base.data, synthetic: { ...base.data.synthetic!, train_size: 16 } } };
    const err = await train({ ...options(exploding, dir), engine }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DivergedError);
    // The message counts the steps done before the one that diverged, as on the host engines.
    expect((err as Error).message).toMatch(/^loss is NaN at epoch 1, step 1 .*no checkpoint had been written yet/);
    expect((await metricsOf(dir)).map((m) => `${m.kind}@${m.step}`)).toEqual(['train@1']);
    expect(existsSync(join(dir, 'checkpoints'))).toBe(false);
  });
});
