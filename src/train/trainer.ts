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
import { augmentViewsParallel, createAugmentPool } from '../data/parallel_augment.js';
import { epochBatches, loadDataSplits, type DataSplits, type ImageDataset } from '../data/index.js';
import type { EngineInfo } from '../engine/engine.js';
import { tf } from '../engine/tf.js';
import { extractFeatures, firstIndices } from '../eval/features.js';
import { withInference } from '../eval/inference.js';
import { knnClassify } from '../eval/knn.js';
import { buildSslModel, type SslModel } from '../model/build.js';
import { formatWeightsReport, loadWeights } from '../model/weights.js';
import { batchViews } from '../method/views.js';
import { LossScaler } from '../optim/loss_scale.js';
import { Sgd } from '../optim/sgd.js';
import { initialLr, learningRate, type ScheduleSpec } from '../optim/schedule.js';
import { createProgress } from '../report/progress.js';
import { writeRunReport } from '../report/run_report.js';
import { UserError } from '../util/errors.js';
import { plural } from '../util/text.js';
import { withGpuMemoryHint } from '../engine/out_of_memory.js';
import { pruneCheckpoints, restoreCheckpoint, saveCheckpoint, type CheckpointState } from './checkpoint.js';
import { MetricsLog, type MetricsRecord, type TrainingLog } from './metrics_log.js';
import { RunningSums, Window, type RunningState } from './running_means.js';
import { findResumePoint, type ResumePoint } from './resume.js';
import { RunDir } from './run_dir.js';
import { lockRunDir, type RunLock } from './run_lock.js';
import { queueTrainStep, type StepResult } from './step.js';
import { stageForUpload } from '../engine/device_queue.js';

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
  /**
   * Logs the run writes beside metrics.jsonl (e.g. TensorBoard events). Each gets every record
   * metrics.jsonl gets and follows the same resume rule (see TrainingLog in metrics_log.ts).
   */
  logs?: TrainingLog[];
}

export interface TrainResult {
  runDir: string;
  epochs: number;
  steps: number;
  /** The loss of the last step. */
  lastLoss: number;
  /** The mean loss over the steps of the last epoch trained (what the epoch lines and the report call the loss). */
  epochLoss?: number;
  knnAccuracy?: number;
  checkpoint: string;
  /** Set when the run stopped early on a signal; `last` then holds the state at that step. */
  interrupted?: string;
  /** Set when --resume found every epoch already trained: what to tell the user (nothing was touched). */
  complete?: string;
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

/** Items with a known label among the first `limit`. */
function labelledIndices(ds: ImageDataset, limit: number): Int32Array {
  return firstIndices(ds.size, limit).filter((i) => ds.labels[i]! >= 0);
}

/**
 * kNN accuracy of the backbone's features: the labelled probe data (or the train split) is the
 * memory bank, the test split the queries. Undefined when either side has no labels.
 *
 * Through engine.inference's runtime, built afresh each time (the weights change every epoch): on the
 * 2-core machine the oneDNN plan for ResNet-18 CIFAR w64 takes about 1.1 s to build and then extracts
 * about 7x faster than the training graph, so it pays from a few hundred images on. Under
 * mixed16 the training graph directly: only it gives the features of the model as trained (a float32
 * runtime would fail the first-batch check against it every time). Only the check's fallback lines
 * reach the log, not the runtime's description every epoch.
 */
async function knnMonitor(cfg: Config, model: SslModel, data: DataSplits, log: (line: string) => void): Promise<number | undefined> {
  const memory = data.probeTrain ?? data.train;
  if (memory.classNames.length === 0 || data.test.classNames.length === 0) return undefined;
  const bankIdx = labelledIndices(memory, cfg.train.knn_limit);
  const testIdx = labelledIndices(data.test, cfg.train.knn_limit);
  if (bankIdx.length === 0 || testIdx.length === 0) return undefined;
  const opts = { normalization: model.normalization, batchSize: cfg.eval.batch_size };
  const inference = {
    runtime: cfg.engine.precision === 'mixed16' ? 'tfjs' : cfg.engine.inference,
    imageSize: cfg.data.image_size,
    batchSize: cfg.eval.batch_size,
    log: (line: string) => {
      if (line.startsWith('inference:')) log(`kNN monitor ${line}`);
    },
  } as const;
  const [bank, queries] = await withInference(model, inference, async (extractor) => [
    await extractFeatures(extractor, memory, { ...opts, indices: bankIdx }),
    await extractFeatures(extractor, data.test, { ...opts, indices: testIdx }),
  ]);
  const labels = bankIdx.map((i) => memory.labels[i]!);
  const dim = model.backbone.featureDim;
  const pred = knnClassify(bank, labels, queries, dim, memory.classNames.length, cfg.eval.knn.k, cfg.eval.knn.t);
  let correct = 0;
  testIdx.forEach((item, i) => {
    if (pred[i] === data.test.labels[item]) correct++;
  });
  return correct / testIdx.length;
}

/** Data kinds whose loaders provide spatial neighbours (DataSplits.neighbours). */
export const NEIGHBOUR_KINDS = ['patches', 'synthetic_slides'] as const;

/** What the chosen method needs from the data, checked before anything is built. */
function checkDataForMethod(cfg: Config, data: DataSplits): void {
  const { name } = cfg.method;
  const kind = cfg.data.kind;
  if (name === 'simtriplet' && !data.neighbours) {
    throw new UserError(
      `method.name 'simtriplet' needs spatial neighbours of the training patches, which data.kind '${kind}' does not provide; ` +
        `use data.kind ${NEIGHBOUR_KINDS.map((k) => `'${k}'`).join(' or ')}, or method.name 'simsiam'`,
    );
  }
  if (name === 'supervised') {
    const unlabelled = data.train.labels.reduce((n, l) => n + (l < 0 ? 1 : 0), 0);
    if (data.train.classNames.length < 2 || unlabelled > 0) {
      const why = data.train.classNames.length < 2 ? 'has no classes' : `has ${unlabelled} unlabelled items`;
      throw new UserError(
        `method.name 'supervised' trains on labels, but the train split of data.kind '${kind}' ${why}; ` +
          "use labelled data (cifar10, ham10000, folder, synthetic) or an SSL method (simsiam, simtriplet)",
      );
    }
  }
}

function describeModel(cfg: Config, model: SslModel): string {
  const m = cfg.model;
  const params = (model.store.count() / 1e6).toFixed(2);
  const heads = cfg.method.name === 'supervised' ? `a zero-initialised linear head (${cfg.method.name})` : `${cfg.method.name} heads`;
  return `${m.arch} (${m.stem} stem, width ${m.width}) + ${heads}, ${params}M trainable parameters`;
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
    const verb = changed.length === 1 ? 'differs' : 'differ';
    throw new UserError(`--resume: ${changed.join(', ')} ${verb} from the checkpoint's config; resume with the run's config.yaml or start a new run`);
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

/** On a GPU engine: device memory held now and its peak so far, in MiB, for metrics.jsonl. */
function gpuMemory(): { gpu_mib?: number; gpu_peak_mib?: number } {
  const m = tf.memory() as tf.MemoryInfo & { numBytesInGPU?: number; peakBytesInGPU?: number };
  if (m.peakBytesInGPU === undefined || m.numBytesInGPU === undefined) return {};
  return { gpu_mib: m.numBytesInGPU / 2 ** 20, gpu_peak_mib: m.peakBytesInGPU / 2 ** 20 };
}

/** Where a run starts: a fresh run directory, or the checkpoint `--resume` continues from. */
interface StartPoint {
  resumeFrom?: ResumePoint['checkpoint'];
  resumePath: string;
}

async function startingPoint(opts: TrainOptions, run: RunDir): Promise<StartPoint> {
  if (opts.resume) {
    const point = await findResumePoint(run);
    if (point.note) opts.log(point.note);
    checkResumable(point.checkpoint.state.config, opts.config);
    return { resumeFrom: point.checkpoint, resumePath: point.path };
  }
  if (existsSync(run.lastCheckpoint)) {
    throw new UserError(
      `${opts.runDir} already holds a run (${run.lastCheckpoint}); continue it with --resume, or pick another --run-dir or name`,
    );
  }
  return { resumePath: '' };
}

/**
 * --resume of a run that has trained every epoch its config asks for: there is nothing to do, so
 * nothing is written (run.json, config.yaml, metrics.jsonl, split.json stay as they are); the answer
 * names the setting that would extend the run.
 */
function completeRun(opts: TrainOptions, start: StartPoint): TrainResult | undefined {
  const saved = start.resumeFrom?.state;
  const wanted = opts.config.train.epochs;
  if (!saved || saved.epoch < wanted) return undefined;
  const number = (v: unknown) => (typeof v === 'number' ? v : undefined);
  const asked = saved.epoch === wanted ? `all ${plural(wanted, 'epoch')} of train.epochs` : `${plural(saved.epoch, 'epoch')}, more than train.epochs ${wanted}`;
  return {
    runDir: opts.runDir,
    epochs: saved.epoch,
    steps: saved.step,
    lastLoss: number(saved.metrics.last_step_loss) ?? Number.NaN,
    epochLoss: number(saved.metrics.loss),
    knnAccuracy: number(saved.metrics.knn_accuracy),
    checkpoint: start.resumePath,
    complete:
      `${opts.runDir} is complete: it has trained ${asked} (${plural(saved.step, 'step')}); nothing was resumed or changed. ` +
      `To train it longer, resume with --set train.epochs=N for an N above ${saved.epoch} (the lr schedule then spans N epochs, so the lr rises again).`,
  };
}

/** The data, checked against what the method needs. The data layer logs what it found and may write split.json. */
async function loadTrainingData(opts: TrainOptions): Promise<DataSplits> {
  const cfg = opts.config;
  const data = await loadDataSplits(cfg.data, cfg.seed, { runDir: opts.runDir, log: opts.log });
  checkDataForMethod(cfg, data);
  return data;
}

/** A training run in progress: what it was built from, and where it has got to. */
interface RunState {
  readonly cfg: Config;
  readonly opts: TrainOptions;
  readonly run: RunDir;
  readonly data: DataSplits;
  readonly model: SslModel;
  readonly optimizer: Sgd;
  readonly scaler?: LossScaler;
  readonly schedule: ScheduleSpec;
  readonly stepsPerEpoch: number;
  /** metrics.jsonl first, then the caller's logs (TrainOptions.logs). */
  readonly logs: readonly TrainingLog[];
  readonly stop: ReturnType<typeof stopSwitch>;
  readonly pool: Awaited<ReturnType<typeof createAugmentPool>>;
  /** The run directory's lock; checked before each step and each write, so a lost lock stops the run. */
  readonly lock?: RunLock;
  /** Global optimiser steps done. */
  step: number;
  skippedSteps: number;
  lastLoss: number;
  epochLoss?: number;
  knnAccuracy?: number;
  /** The newest checkpoint written (or resumed from); '' before the first. */
  checkpoint: string;
  /** The next batch, augmenting on the worker pool while the current step runs. */
  ahead?: Promise<Float32Array[]>;
  /** Resumed inside an epoch: the sums that epoch had reached, taken up by its first step here. */
  running?: RunningState;
  /** performance.now() of the last flush of the logs. */
  flushedAt: number;
}

/** Logs flush at least this often, so that eval and report see a long epoch's progress. */
const FLUSH_EVERY_MS = 30_000;

function appendRecord(state: RunState, record: MetricsRecord): void {
  for (const log of state.logs) log.append(record);
}

async function flushLogs(state: RunState): Promise<void> {
  for (const log of state.logs) await log.flush();
  state.flushedAt = performance.now();
}

function scheduleOf(cfg: Config, stepsPerEpoch: number): ScheduleSpec {
  return {
    baseLr: cfg.train.base_lr,
    batchSize: cfg.train.batch_size,
    batchRef: cfg.train.lr_batch_ref,
    warmupEpochs: cfg.train.warmup_epochs,
    epochs: cfg.train.epochs,
    stepsPerEpoch,
    decay: cfg.train.schedule,
  };
}

/** Model, optimiser and loss scaler for the config, on the loaded data. */
function buildModel(cfg: Config, data: DataSplits): Pick<RunState, 'model' | 'optimizer' | 'scaler'> {
  const model = buildSslModel(cfg.model, cfg.method, cfg.seed, { numClasses: data.train.classNames.length, precision: cfg.engine.precision });
  const optimizer = new Sgd(model.store.trainable(), {
    momentum: cfg.train.momentum,
    weightDecay: cfg.train.weight_decay,
    decayNormAndBias: cfg.train.wd_on_norm_and_bias,
  });
  const scaler = cfg.engine.precision === 'mixed16' ? new LossScaler({ initScale: cfg.engine.loss_scale_init }) : undefined;
  return { model, optimizer, scaler };
}

/** The weights a run starts from: the resumed checkpoint's (with momentum and loss scale), else model.weights, else the seeded init. */
async function restoreOrInitialise(state: RunState, start: StartPoint): Promise<void> {
  const { cfg, opts } = state;
  if (start.resumeFrom) {
    restoreCheckpoint(start.resumeFrom, state.model.store, state.optimizer);
    state.step = start.resumeFrom.state.step;
    state.running = start.resumeFrom.state.running;
    const lastStepLoss = start.resumeFrom.state.metrics.last_step_loss;
    if (typeof lastStepLoss === 'number') state.lastLoss = lastStepLoss;
    const saved = start.resumeFrom.state.loss_scaling;
    if (state.scaler && saved) state.scaler.load(saved.scaler);
    state.skippedSteps = saved?.skipped_steps ?? 0;
  } else if (cfg.model.weights) {
    opts.log(`weights: ${formatWeightsReport(await loadWeights(state.model.store, cfg.model.weights, { arch: cfg.model.arch }))}`);
  }
}

/** metrics.jsonl continued (resume) or started afresh, and config.yaml and run.json written. */
async function recordRunStart(state: RunState, start: StartPoint): Promise<void> {
  const { cfg, opts, run } = state;
  // Every log drops what was logged after the checkpoint the run continues from (all of it when fresh).
  for (const log of state.logs) await log.resumeAt(state.step);
  const configText = configToYaml(cfg);
  await run.writeText('config.yaml', configText);
  const now = new Date().toISOString();
  // A resumed run keeps when the run started, and adds this resumption to the list.
  const before = start.resumeFrom ? await run.readJson('run.json') : undefined;
  const resumes = Array.isArray(before?.resumes) ? before.resumes : [];
  const info = {
    name: cfg.name,
    engine: opts.engine.engine,
    engine_detail: opts.engine.detail,
    precision: cfg.engine.precision,
    node: process.version,
    started: typeof before?.started === 'string' ? before.started : now,
    resumed_from_step: start.resumeFrom ? state.step : null,
    ...(start.resumeFrom ? { resumes: [...resumes, { step: state.step, time: now, engine: opts.engine.engine }] } : {}),
    data: state.data.description,
    steps_per_epoch: state.stepsPerEpoch,
  };
  await run.writeJson('run.json', info);
  for (const log of state.logs) log.started?.({ step: state.step, config: configText, info });
}

/** Where a resumed run picks up, in the 1-based epochs the progress lines use. */
export function resumedAt(step: number, stepsPerEpoch: number, epochs: number): string {
  const epoch = Math.floor(step / stepsPerEpoch) + 1;
  const within = step % stepsPerEpoch;
  if (within === 0) return `resumed at the start of epoch ${epoch}/${epochs}, step ${step}`;
  return `resumed in epoch ${epoch}/${epochs} after its step ${within} of ${stepsPerEpoch}, step ${step} overall`;
}

function logHeader(state: RunState, resumed: boolean): void {
  const { cfg, opts, stepsPerEpoch, step } = state;
  const decay = cfg.train.schedule === 'steps' ? 'x0.1 at 30/60/90 % of steps' : 'cosine';
  opts.log(`run      ${opts.runDir}${resumed ? ` (${resumedAt(step, stepsPerEpoch, cfg.train.epochs)})` : ''}`);
  opts.log(`engine   ${opts.engine.engine} (${opts.engine.detail}), ${cfg.engine.precision}`);
  opts.log(`data     ${state.data.description}`);
  opts.log(`model    ${describeModel(cfg, state.model)}`);
  opts.log(
    `schedule ${cfg.train.epochs} epochs x ${stepsPerEpoch} steps, batch ${cfg.train.batch_size}, lr ${initialLr(state.schedule).toPrecision(3)}` +
      ` (base ${cfg.train.base_lr} x batch/${cfg.train.lr_batch_ref}), warm-up ${cfg.train.warmup_epochs} epochs, ${decay}`,
  );
}

/**
 * Writes `last` (and the epoch file when `keep`) at the current step; returns the path of `last`.
 * The logs are flushed first: what a checkpoint covers is on disk before the checkpoint exists.
 */
async function saveState(state: RunState, epochsDone: number, keep: boolean, extra: Record<string, unknown>, running?: RunningState): Promise<string> {
  const { cfg, opts, scaler } = state;
  state.lock?.check();
  await flushLogs(state);
  const checkpointState: CheckpointState = {
    format: 1,
    epoch: epochsDone,
    step: state.step,
    config: cfg,
    normalization: state.model.normalization,
    engine: opts.engine.engine,
    created: new Date().toISOString(),
    metrics: { ...extra, last_step_loss: state.lastLoss },
    ...(running ? { running } : {}),
    ...(scaler ? { loss_scaling: { scaler: scaler.state(), skipped_steps: state.skippedSteps } } : {}),
  };
  const path = await saveCheckpoint(opts.runDir, { store: state.model.store, optimizer: state.optimizer, state: checkpointState, keep });
  if (keep) await pruneCheckpoints(opts.runDir, cfg.train.keep_last);
  state.checkpoint = path;
  return path;
}

/**
 * Whether the logs get this epoch's first batch of views (TrainingLog.views): the run's first step,
 * then the first step of every train.knn_every-th epoch (0-based epoch k, 2k, ...: after each kNN check).
 */
export function viewsDue(cfg: Config, epoch: number): boolean {
  return epoch === 0 || (cfg.train.knn_every > 0 && epoch % cfg.train.knn_every === 0);
}

/** The numbers the loop needs from one step: the one place that reads trainStep's result. */
interface StepNumbers {
  loss: number;
  skipped: boolean;
  accuracy?: number;
  /** The per-step numbers of the metrics log, under their metrics.jsonl names. */
  logged: Record<string, number | undefined>;
}

/** A step whose update is queued and whose numbers are not recorded yet. */
interface QueuedStep {
  /** The step's numbers once they are back, or the engine's error; never rejects. */
  numbers: Promise<{ value: StepNumbers } | { error: unknown }>;
  /** The numbers were read at once (a host engine, a loss scaler): record them before the next step. */
  ready: boolean;
  /** The step's batch within its epoch. */
  batch: number;
  /** Global steps done before it. */
  stepsBefore: number;
  lr: (group: string) => number;
  /** How long the step waited for its batch's views (ms). */
  dataWaitMs?: number;
}

function runStep(state: RunState, views: Float32Array[], labels: Int32Array | undefined, lr: (group: string) => number, batch: number): QueuedStep {
  const { cfg, model } = state;
  const queued = withGpuMemoryHint(
    () => queueTrainStep(model.method, model.store, state.optimizer, views, cfg.data.image_size, lr, { labels, scaler: state.scaler }),
    'train.batch_size',
    cfg.train.batch_size,
  );
  const numbers = (out: StepResult): StepNumbers => ({
    loss: out.loss,
    skipped: out.skipped,
    accuracy: out.accuracy,
    logged: { loss: out.loss, collapse_std: out.collapseStd, train_accuracy: out.accuracy, ...out.terms },
  });
  return {
    numbers: queued.result.then((out) => ({ value: numbers(out) }), (error: unknown) => ({ error })),
    ready: queued.ready !== undefined,
    batch,
    stepsBefore: state.step,
    lr,
  };
}

/** The divergence error of the step after `stepsBefore` steps, saying what is kept and what to do next. */
function divergence(state: RunState, loss: number, epoch: number, step: number, lr: (group: string) => number): DivergedError {
  const { checkpoint } = state;
  // Before the first checkpoint there is nothing to resume; --resume would only be refused.
  const kept = checkpoint ? `the last good checkpoint ${checkpoint} is kept` : 'no checkpoint had been written yet';
  const next = checkpoint ? 'then resume with --resume' : 'then start the run again (without --resume: there is no checkpoint to continue from)';
  return new DivergedError(
    `loss is ${loss} at epoch ${epoch + 1}, step ${step} (lr ${lr('default').toPrecision(3)}); the update was skipped and ${kept}. ` +
      `Lower train.base_lr or raise train.warmup_epochs, ${next}.`,
  );
}

/** What an epoch's steps came to: the epoch's mean loss, or the signal that stopped it. */
type EpochOutcome = { interrupted: string } | { means: Record<string, number> };

/** An epoch's running account of its recorded steps. */
interface EpochTally {
  epoch: number;
  batches: number;
  window: Window;
  sums: RunningSums;
  progress: ReturnType<typeof createProgress>;
  /** The model has a predictor, whose lr is logged beside the backbone's. */
  predictor: boolean;
}

/**
 * Records a queued step once its numbers are back: divergence (or the engine's error) stops the run
 * here, with the logs flushed; otherwise the step joins the window and the epoch's sums, the metrics
 * log, the progress bar and onStep.
 */
async function recordStep(state: RunState, tally: EpochTally, queued: QueuedStep): Promise<void> {
  const { cfg, opts, scaler } = state;
  const settled = await queued.numbers;
  const out = 'value' in settled ? settled.value : undefined;
  // Only a non-finite (unscaled) loss is divergence; mixed16's overflow skips are routine.
  if (!out || !Number.isFinite(out.loss)) {
    tally.progress.stop();
    await flushLogs(state);
    throw out ? divergence(state, out.loss, tally.epoch, queued.stepsBefore, queued.lr) : (settled as { error: unknown }).error;
  }
  const step = queued.stepsBefore + 1;
  const { lr } = queued;
  if (out.skipped) state.skippedSteps++;
  state.lastLoss = out.loss;
  tally.sums.add(out.logged);
  tally.window.add(out.logged, cfg.train.batch_size, queued.dataWaitMs);
  if (tally.window.steps === cfg.train.log_every || queued.batch === tally.batches - 1) {
    appendRecord(state, {
      kind: 'train',
      step,
      epoch: tally.epoch + 1,
      lr: lr('default'),
      ...(tally.predictor ? { lr_predictor: lr('predictor') } : {}),
      ...tally.window.take(),
      ...(scaler ? { loss_scale: scaler.scale, skipped_steps: state.skippedSteps } : {}),
      ...gpuMemory(),
      rss_mib: process.memoryUsage.rss() / 2 ** 20,
      time: new Date().toISOString(),
    });
    if (performance.now() - state.flushedAt >= FLUSH_EVERY_MS) await flushLogs(state);
  }
  const fields: Record<string, string> = { 'step loss': out.loss.toFixed(4), lr: lr('default').toPrecision(3) };
  if (out.accuracy !== undefined) fields.acc = out.accuracy.toFixed(3);
  if (scaler) fields.scale = String(scaler.scale);
  tally.progress.update(queued.batch + 1, fields);
  opts.onStep?.(step);
}

/** The steps of one epoch, from where the run stands; a stop request saves `last` at the step reached. */
async function trainEpoch(state: RunState, epoch: number): Promise<EpochOutcome> {
  const { cfg, opts, data, model, pool } = state;
  const method = model.method;
  const side = cfg.data.image_size;
  const augment = method.augment?.(cfg.data.augment) ?? cfg.data.augment;
  const batches = epochBatches(data.train.size, cfg.train.batch_size, cfg.seed, epoch);
  const progress = createProgress({
    label: `epoch ${epoch + 1}/${cfg.train.epochs}`,
    total: batches.length,
    unit: 'step',
    stream: opts.progressStream,
  });
  const prepare = (b: number): Promise<Float32Array[]> => {
    const { source, items } = batchViews(method, data, batches[b]!, cfg.seed, epoch);
    return augmentViewsParallel(source, items, side, augment, model.normalization, { seed: cfg.seed, epoch }, pool).then(stageForUpload);
  };
  const predictor = model.store.trainable().some((p) => p.group === 'predictor');
  const firstBatch = state.step - epoch * state.stepsPerEpoch;
  state.ahead = pool && firstBatch < batches.length ? prepare(firstBatch) : undefined;
  // Resumed inside this epoch: the window and the epoch go on from the sums the checkpoint carried.
  const resumed = state.running;
  state.running = undefined;
  const tally: EpochTally = { epoch, batches: batches.length, window: new Window(resumed?.window), sums: new RunningSums(resumed?.epoch), progress, predictor };
  // On the CUDA engine a step's numbers come in one step late (src/train/step.ts): the GPU runs step b
  // while step b - 1's come back, and only then are they checked, logged and shown. A stop request
  // therefore saves after the step already queued, recorded first: a checkpoint's running sums cover
  // exactly the steps in its weights. Host engines read at once and record each step before the next.
  let inFlight: QueuedStep | undefined;
  const land = async (): Promise<void> => {
    const queued = inFlight;
    inFlight = undefined;
    if (queued) await recordStep(state, tally, queued);
  };
  for (let b = firstBatch; b < batches.length; b++) {
    // Steps are synchronous; without a turn of the event loop a Ctrl-C would wait for the epoch's end.
    await new Promise((resolve) => setImmediate(resolve));
    state.lock?.check();
    const why = state.stop.reason();
    if (why !== undefined) {
      await land();
      progress.stop();
      await saveState(state, epoch, false, { interrupted: why }, { window: tally.window.state(), epoch: tally.sums.state() });
      return { interrupted: why };
    }
    const batch = batches[b]!;
    const waitStart = performance.now();
    const views = await (state.ahead ?? prepare(b));
    const dataWaitMs = performance.now() - waitStart;
    state.ahead = pool && b + 1 < batches.length ? prepare(b + 1) : undefined;
    if (b === 0 && viewsDue(cfg, epoch)) {
      for (const log of state.logs) log.views?.({ step: state.step + 1, epoch: epoch + 1, views, side, normalization: model.normalization });
    }
    const labels = method.needsLabels ? batch.map((i) => data.train.labels[i]!) : undefined;
    const queued = { ...runStep(state, views, labels, groupLr(cfg, state.schedule, state.step), b), dataWaitMs };
    await land();
    inFlight = queued;
    state.step++;
    if (queued.ready) await land();
  }
  await land();
  progress.finish();
  return { means: tally.sums.means() };
}

/**
 * The end of an epoch: its mean loss (and other per-step numbers) as an `epoch` record, the kNN
 * monitor when due, the checkpoint, and the epoch's line.
 */
async function finishEpoch(state: RunState, epochsDone: number, means: Record<string, number>): Promise<void> {
  const { cfg, opts, scaler } = state;
  const meanLoss = means.loss!;
  state.epochLoss = meanLoss;
  appendRecord(state, { kind: 'epoch', step: state.step, epoch: epochsDone, ...means });
  const summary: Record<string, unknown> = { loss: meanLoss };
  const lastEpoch = epochsDone === cfg.train.epochs;
  if (cfg.train.knn_every > 0 && (epochsDone % cfg.train.knn_every === 0 || lastEpoch)) {
    state.knnAccuracy = await knnMonitor(cfg, state.model, state.data, opts.log);
    if (state.knnAccuracy !== undefined) {
      summary.knn_accuracy = state.knnAccuracy;
      appendRecord(state, { kind: 'knn', step: state.step, epoch: epochsDone, accuracy: state.knnAccuracy, k: cfg.eval.knn.k });
    }
  }
  await saveState(state, epochsDone, epochsDone % cfg.train.checkpoint_every === 0 || lastEpoch, summary);
  const knnText = summary.knn_accuracy === undefined ? '' : `  knn ${(100 * (summary.knn_accuracy as number)).toFixed(2)}%`;
  const scaleText = scaler ? `  loss scale ${scaler.scale} (${plural(state.skippedSteps, 'skipped step')})` : '';
  const gpu = gpuMemory();
  const gpuText = gpu.gpu_peak_mib === undefined ? '' : `  GPU memory peak ${(gpu.gpu_peak_mib / 1024).toFixed(2)} GiB`;
  opts.log(`epoch ${epochsDone}/${cfg.train.epochs}  mean loss ${meanLoss.toFixed(4)}${knnText}${scaleText}  tensors ${tf.memory().numTensors}${gpuText}`);
}

/**
 * Trains (or with `resume`, continues) the run in opts.runDir, holding the run directory's lock
 * throughout: a second writer is refused with the holder's PID, host and start time (run_lock.ts).
 */
export async function train(opts: TrainOptions): Promise<TrainResult> {
  // --resume of a folder that does not exist: nothing to lock, and startingPoint says what is wrong.
  const lock = opts.resume && !existsSync(opts.runDir) ? undefined : await lockRunDir(opts.runDir, { create: !opts.resume, log: opts.log });
  try {
    return await trainLocked(opts, lock);
  } finally {
    await lock?.release();
  }
}

async function trainLocked(opts: TrainOptions, lock: RunLock | undefined): Promise<TrainResult> {
  const cfg = opts.config;
  const run = new RunDir(opts.runDir);
  const start = await startingPoint(opts, run);
  const complete = completeRun(opts, start);
  if (complete) return complete;
  const data = await loadTrainingData(opts);
  const { model, optimizer, scaler } = buildModel(cfg, data);
  const stop = stopSwitch(opts);
  // data.workers > 0: augmentation runs on worker threads, one batch ahead of the step, so it overlaps
  // the engine's work. Results are bit-identical to the in-process path (same per-item streams).
  const pool = await createAugmentPool(cfg.data.workers);
  const stepsPerEpoch = epochBatches(data.train.size, cfg.train.batch_size, cfg.seed, 0).length;
  const state: RunState = {
    cfg,
    opts,
    run,
    data,
    model,
    optimizer,
    scaler,
    schedule: scheduleOf(cfg, stepsPerEpoch),
    stepsPerEpoch,
    logs: [new MetricsLog(run.metrics), ...(opts.logs ?? [])],
    stop,
    pool,
    lock,
    step: 0,
    skippedSteps: 0,
    lastLoss: Number.NaN,
    checkpoint: start.resumePath,
    flushedAt: performance.now(),
  };
  try {
    await restoreOrInitialise(state, start);
    await recordRunStart(state, start);
    logHeader(state, start.resumeFrom !== undefined);
    for (let epoch = Math.floor(state.step / stepsPerEpoch); epoch < cfg.train.epochs; epoch++) {
      const outcome = await trainEpoch(state, epoch);
      if ('interrupted' in outcome) {
        const { step, lastLoss, knnAccuracy, checkpoint } = state;
        return { runDir: opts.runDir, epochs: epoch, steps: step, lastLoss, knnAccuracy, checkpoint, interrupted: outcome.interrupted };
      }
      await finishEpoch(state, epoch + 1, outcome.means);
    }
    await writeRunReport(opts.runDir, { projDim: cfg.method.proj_dim });
    const { step, lastLoss, epochLoss, knnAccuracy, checkpoint } = state;
    return { runDir: opts.runDir, epochs: cfg.train.epochs, steps: step, lastLoss, epochLoss, knnAccuracy, checkpoint };
  } finally {
    for (const log of state.logs) await log.close?.();
    // A batch still being augmented when the run stops (signal, divergence, error) is not needed.
    await state.ahead?.catch(() => undefined);
    await pool?.close();
    stop.dispose();
    optimizer.dispose();
    model.store.dispose();
  }
}
