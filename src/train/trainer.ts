/**
 * The SSL training loop: epochs of seeded batches, augmented views, SGD steps on a warm-up + cosine
 * schedule, metrics to metrics.jsonl, a kNN monitor, and checkpoints that a resumed run continues
 * from exactly (same batches, same augmentations, same weights and momentum).
 *
 * Failure never costs the last good checkpoint: a NaN loss stops before its update and writes
 * nothing; Ctrl-C / SIGTERM finish the current step and save `last` at that step; a kill leaves the
 * previous `last` intact because checkpoints are replaced atomically.
 */
import { existsSync } from 'node:fs';
import type { Config } from '../config/schema.js';
import { configToYaml } from '../config/load.js';
import { augmentBatch } from '../data/augment.js';
import { epochBatches, loadDataSplits, type DataSplits } from '../data/index.js';
import type { EngineInfo } from '../engine/engine.js';
import { tf } from '../engine/tf.js';
import { extractFeatures, firstIndices } from '../eval/features.js';
import { knnClassify } from '../eval/knn.js';
import { buildSslModel, type SslModel } from '../model/build.js';
import { formatWeightsReport, loadWeights } from '../model/weights.js';
import { Sgd } from '../optim/sgd.js';
import { initialLr, learningRate, type ScheduleSpec } from '../optim/schedule.js';
import { createProgress } from '../report/progress.js';
import { writeRunPlots } from '../report/plot.js';
import { UserError } from '../util/errors.js';
import { pruneCheckpoints, readCheckpoint, restoreCheckpoint, saveCheckpoint, type CheckpointState } from './checkpoint.js';
import { MetricsLog } from './metrics_log.js';
import { RunDir } from './run_dir.js';
import { trainStep } from './step.js';

export interface TrainOptions {
  config: Config;
  runDir: string;
  resume: boolean;
  engine: EngineInfo;
  /** Human-readable lines (run header, epoch summaries). */
  log: (line: string) => void;
  /** Where the progress bar draws; stderr by default. */
  progressStream?: NodeJS.WriteStream;
  /** Stops the run at the next step boundary, as Ctrl-C does. */
  signal?: AbortSignal;
  /** Installs SIGINT/SIGTERM handlers for the run's duration (the CLI does; tests do not). */
  handleSignals?: boolean;
  /** Called after every completed step with the global step count. */
  onStep?: (step: number) => void;
}

export interface TrainResult {
  runDir: string;
  epochs: number;
  steps: number;
  lastLoss: number;
  knnAccuracy?: number;
  checkpoint: string;
  /** Set when the run stopped early on a signal; `last` then holds the state at that step. */
  interrupted?: string;
}

/** A run that stopped because its loss stopped being a number. Exit code 1; the checkpoint is kept. */
export class DivergedError extends Error {
  override name = 'DivergedError';
}

/** lr per optimiser group: the predictor can keep lr0 (SimSiam's fix_pred_lr), the rest follow the schedule. */
function groupLr(cfg: Config, spec: ScheduleSpec, step: number): (group: string) => number {
  const lr = learningRate(spec, step);
  const lr0 = initialLr(spec);
  return (group) => (group === 'predictor' && cfg.train.fix_pred_lr ? lr0 : lr);
}

function knnMonitor(cfg: Config, model: SslModel, data: DataSplits): number | undefined {
  if (data.train.classNames.length === 0 || data.test.size === 0) return undefined;
  const opts = { imageSize: cfg.data.image_size, normalization: model.normalization, batchSize: cfg.eval.batch_size };
  const trainIdx = firstIndices(data.train.size, cfg.train.knn_limit);
  const testIdx = firstIndices(data.test.size, cfg.train.knn_limit);
  const bank = extractFeatures(model.backbone, data.train, { ...opts, indices: trainIdx });
  const queries = extractFeatures(model.backbone, data.test, { ...opts, indices: testIdx });
  const labels = trainIdx.map((i) => data.train.labels[i]!);
  const dim = model.backbone.featureDim;
  const pred = knnClassify(bank, labels, queries, dim, data.train.classNames.length, cfg.eval.knn.k, cfg.eval.knn.t);
  let correct = 0;
  testIdx.forEach((item, i) => {
    if (pred[i] === data.test.labels[item]) correct++;
  });
  return correct / testIdx.length;
}

function describeModel(cfg: Config, model: SslModel): string {
  const m = cfg.model;
  const params = (model.store.count() / 1e6).toFixed(2);
  return `${m.arch} (${m.stem} stem, width ${m.width}) + ${cfg.method.name} heads, ${params}M trainable parameters`;
}

/**
 * Settings a resumed run must share with its checkpoint: the weights' shapes, the batch order and the
 * augmentation streams depend on them. Schedule and logging settings may change on resume.
 */
function checkResumable(saved: Config, now: Config): void {
  const fixed: Array<[string, unknown, unknown]> = [
    ['seed', saved.seed, now.seed],
    ['model', saved.model, now.model],
    ['method', saved.method, now.method],
    ['data', saved.data, now.data],
    ['train.batch_size', saved.train.batch_size, now.train.batch_size],
  ];
  const changed = fixed.filter(([, a, b]) => JSON.stringify(a) !== JSON.stringify(b)).map(([k]) => k);
  if (changed.length > 0) {
    throw new UserError(`--resume: ${changed.join(', ')} differ from the checkpoint's config; resume with the run's config.yaml or start a new run`);
  }
}

/** Stop requests from signals and the caller's AbortSignal, polled at step boundaries. */
function stopSwitch(opts: TrainOptions): { reason(): string | undefined; dispose(): void } {
  let reason: string | undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    if (reason !== undefined) process.exit(130); // a second Ctrl-C means now
    reason = sig;
    opts.log(`\n${sig}: finishing the current step and saving a checkpoint (press Ctrl-C again to quit at once)`);
  };
  if (opts.handleSignals) {
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  }
  return {
    reason: () => reason ?? (opts.signal?.aborted ? 'aborted' : undefined),
    dispose: () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}

export async function train(opts: TrainOptions): Promise<TrainResult> {
  const cfg = opts.config;
  const run = new RunDir(opts.runDir);
  let resumeFrom: Awaited<ReturnType<typeof readCheckpoint>> | undefined;
  if (opts.resume) {
    if (!existsSync(run.lastCheckpoint)) {
      throw new UserError(`--resume: no checkpoint at ${run.lastCheckpoint}; start the run without --resume`);
    }
    resumeFrom = await readCheckpoint(run.lastCheckpoint);
    checkResumable(resumeFrom.state.config, cfg);
  } else if (existsSync(run.lastCheckpoint)) {
    throw new UserError(
      `${opts.runDir} already holds a run (${run.lastCheckpoint}); continue it with --resume, or pick another --run-dir or name`,
    );
  }

  const data = await loadDataSplits(cfg.data, cfg.seed);
  const model = buildSslModel(cfg.model, cfg.method, cfg.seed);
  const optimizer = new Sgd(model.store.trainable(), {
    momentum: cfg.train.momentum,
    weightDecay: cfg.train.weight_decay,
    decayNormAndBias: cfg.train.wd_on_norm_and_bias,
  });
  const stop = stopSwitch(opts);
  try {
    const stepsPerEpoch = epochBatches(data.train.size, cfg.train.batch_size, cfg.seed, 0).length;
    const schedule: ScheduleSpec = {
      baseLr: cfg.train.base_lr,
      batchSize: cfg.train.batch_size,
      warmupEpochs: cfg.train.warmup_epochs,
      epochs: cfg.train.epochs,
      stepsPerEpoch,
    };
    let step = 0;
    if (resumeFrom) {
      restoreCheckpoint(resumeFrom, model.store, optimizer);
      step = resumeFrom.state.step;
    } else if (cfg.model.weights) {
      opts.log(`weights: ${formatWeightsReport(await loadWeights(model.store, cfg.model.weights))}`);
    }
    const metrics = new MetricsLog(run.metrics);
    if (resumeFrom) await metrics.truncateAfter(step);
    else await metrics.reset();
    await run.writeText('config.yaml', configToYaml(cfg));
    await run.writeJson('run.json', {
      name: cfg.name,
      engine: opts.engine.engine,
      engine_detail: opts.engine.detail,
      node: process.version,
      started: new Date().toISOString(),
      resumed_from_step: resumeFrom ? step : null,
      data: data.description,
      steps_per_epoch: stepsPerEpoch,
    });

    const startEpoch = Math.floor(step / stepsPerEpoch);
    opts.log(`run      ${opts.runDir}${resumeFrom ? ` (resumed at epoch ${startEpoch}, step ${step})` : ''}`);
    opts.log(`engine   ${opts.engine.engine} (${opts.engine.detail})`);
    opts.log(`data     ${data.description}`);
    opts.log(`model    ${describeModel(cfg, model)}`);
    opts.log(
      `schedule ${cfg.train.epochs} epochs x ${stepsPerEpoch} steps, batch ${cfg.train.batch_size}, lr ${initialLr(schedule).toPrecision(3)}` +
        ` (base ${cfg.train.base_lr} x batch/256), warm-up ${cfg.train.warmup_epochs} epochs, cosine`,
    );

    const save = async (epochsDone: number, keep: boolean, extra: Record<string, unknown>): Promise<string> => {
      const state: CheckpointState = {
        format: 1,
        epoch: epochsDone,
        step,
        config: cfg,
        normalization: model.normalization,
        engine: opts.engine.engine,
        created: new Date().toISOString(),
        metrics: extra,
      };
      const path = await saveCheckpoint(opts.runDir, { store: model.store, optimizer, state, keep });
      if (keep) await pruneCheckpoints(opts.runDir, cfg.train.keep_last);
      return path;
    };

    const side = cfg.data.image_size;
    let lastLoss = Number.NaN;
    let knnAccuracy: number | undefined;
    let checkpoint = resumeFrom ? run.lastCheckpoint : '';
    for (let epoch = startEpoch; epoch < cfg.train.epochs; epoch++) {
      const batches = epochBatches(data.train.size, cfg.train.batch_size, cfg.seed, epoch);
      const progress = createProgress({
        label: `epoch ${epoch + 1}/${cfg.train.epochs}`,
        total: batches.length,
        unit: 'step',
        stream: opts.progressStream,
      });
      let recent = { loss: 0, collapse: 0, n: 0, images: 0, t0: performance.now() };
      let epochLoss = 0;
      let epochSteps = 0;
      for (let b = step - epoch * stepsPerEpoch; b < batches.length; b++) {
        // Steps are synchronous; without a turn of the event loop a Ctrl-C would wait for the epoch's end.
        await new Promise((resolve) => setImmediate(resolve));
        const why = stop.reason();
        if (why !== undefined) {
          progress.finish();
          checkpoint = await save(epoch, false, { loss: lastLoss, interrupted: why });
          await metrics.flush();
          return { runDir: opts.runDir, epochs: epoch, steps: step, lastLoss, knnAccuracy, checkpoint, interrupted: why };
        }
        const views = augmentBatch(data.train, batches[b]!, side, cfg.data.augment, model.normalization, { seed: cfg.seed, epoch }, model.method.views);
        const lr = groupLr(cfg, schedule, step);
        const out = trainStep(model.method, model.store, optimizer, views, side, lr);
        if (!Number.isFinite(out.loss)) {
          progress.finish();
          await metrics.flush();
          const kept = checkpoint ? `the last good checkpoint ${checkpoint} is kept` : 'no checkpoint had been written yet';
          throw new DivergedError(
            `loss is ${out.loss} at epoch ${epoch + 1}, step ${step} (lr ${lr('default').toPrecision(3)}); the update was skipped and ${kept}. ` +
              'Lower train.base_lr or raise train.warmup_epochs, then resume with --resume.',
          );
        }
        step++;
        lastLoss = out.loss;
        epochLoss += out.loss;
        epochSteps++;
        recent.loss += out.loss;
        recent.collapse += out.collapseStd;
        recent.n++;
        recent.images += cfg.train.batch_size;
        const fields = { loss: out.loss.toFixed(4), lr: lr('default').toPrecision(3) };
        if (recent.n === cfg.train.log_every || b === batches.length - 1) {
          const seconds = (performance.now() - recent.t0) / 1000;
          metrics.append({
            kind: 'train',
            step,
            epoch: epoch + 1,
            loss: recent.loss / recent.n,
            lr: lr('default'),
            collapse_std: recent.collapse / recent.n,
            img_per_s: recent.images / seconds,
            ...out.terms,
            time: new Date().toISOString(),
          });
          recent = { loss: 0, collapse: 0, n: 0, images: 0, t0: performance.now() };
        }
        progress.update(b + 1, fields);
        opts.onStep?.(step);
      }
      progress.finish();
      const epochsDone = epoch + 1;
      // A resumed epoch averages only the steps this process ran.
      const summary: Record<string, unknown> = { loss: epochLoss / Math.max(epochSteps, 1) };
      const lastEpoch = epochsDone === cfg.train.epochs;
      if (cfg.train.knn_every > 0 && (epochsDone % cfg.train.knn_every === 0 || lastEpoch)) {
        knnAccuracy = knnMonitor(cfg, model, data);
        if (knnAccuracy !== undefined) {
          summary.knn_accuracy = knnAccuracy;
          metrics.append({ kind: 'knn', step, epoch: epochsDone, accuracy: knnAccuracy, k: cfg.eval.knn.k });
        }
      }
      checkpoint = await save(epochsDone, epochsDone % cfg.train.checkpoint_every === 0 || lastEpoch, summary);
      await metrics.flush();
      const knnText = summary.knn_accuracy === undefined ? '' : `  knn ${(100 * (summary.knn_accuracy as number)).toFixed(2)}%`;
      opts.log(`epoch ${epochsDone}/${cfg.train.epochs}  loss ${(summary.loss as number).toFixed(4)}${knnText}  tensors ${tf.memory().numTensors}`);
    }
    await writeRunPlots(opts.runDir, { projDim: cfg.method.proj_dim });
    return { runDir: opts.runDir, epochs: cfg.train.epochs, steps: step, lastLoss, knnAccuracy, checkpoint };
  } finally {
    stop.dispose();
    optimizer.dispose();
    model.store.dispose();
  }
}
