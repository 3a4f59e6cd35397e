/**
 * `simtrip eval`: frozen-encoder evaluation. Features are extracted once per split, then the linear
 * probe (one per label fraction, under the split or leave-one-group-out protocol, see protocols.ts)
 * and/or the weighted kNN classifier run on them.
 *
 * The encoder is a simtrip checkpoint, else the config's `model.weights` (which must fill the whole
 * backbone, see frozen_weights.ts), else the seeded random initialisation: the last two are the
 * baselines papers compare against.
 */
import type { Config, DataConfig, ModelConfig } from '../config/schema.js';
import type { Normalization } from '../data/augment.js';
import { streamDataSplits } from '../data/index.js';
import { buildEncoder, type EncoderModel } from '../model/build.js';
import { formatWeightsReport, loadSafetensorsWeights, loadWeights } from '../model/weights.js';
import { readCheckpoint, resolveCheckpointPath } from '../train/checkpoint.js';
import { createProgress } from '../report/progress.js';
import type { DataSplits, ImageDataset } from '../data/dataset.js';
import { UserError } from '../util/errors.js';
import { cachedFeatures, FeatureCache, fileIdentity } from './feature_cache.js';
import { encoderFingerprint } from './encoder_fingerprint.js';
import { extractFeatures } from './features.js';
import type { FeatureExtractor } from './extractor.js';
import { createInference, throughputText } from './inference.js';
import type { FittedProbe } from './fitted_probe.js';
import { featureViews, type FeatureViews } from './feature_views.js';
import { requireWholeBackbone } from './frozen_weights.js';
import { fitLogoProbe } from './logo.js';
import type { ClassificationMetrics } from './metrics.js';
import {
  groupName,
  knnProbe,
  labelledGroups,
  labelledRows,
  fitSplitProbe,
  resolveProtocol,
  type EvalResult,
  type FeatureSet,
  type LinearResult,
  type ProbeData,
  type ProbeProgress,
  type ProtocolName,
} from './protocols.js';

export interface EvalOptions {
  config: Config;
  checkpoint?: string;
  linear: boolean;
  knn: boolean;
  /** Label fractions for the linear probe; the config's eval.linear.label_fraction when absent. */
  labelFractions?: readonly number[];
  engine: string;
  log: (line: string) => void;
  progressStream?: NodeJS.WriteStream;
  /** Splits already in memory (tests, callers that built them); loaded from config.data when absent. */
  data?: DataSplits;
  /** Folder to cache features in as float16 .npy (see feature_cache.ts); no caching when absent. */
  featureCache?: string;
  /** Receives each linear result with the probe behind its test metrics (to keep it, see saved_probe.ts). */
  onProbe?: (result: LinearResult, probe: FittedProbe) => void;
  /** Also draw the UMAP and the neighbour grid of the features, and keep the projector's inputs (feature_views.ts). */
  views?: boolean;
}

export type { EvalResult } from './protocols.js';

/** Where the evaluated weights came from, for the records' keys (see records.ts). */
export type EncoderSource =
  | { kind: 'checkpoint'; path: string; step: number; epoch: number; /** The data the checkpoint was trained on. */ trained_on: DataConfig }
  | { kind: 'weights'; path: string; model: ModelConfig }
  | { kind: 'random-init'; model: ModelConfig };

export interface EvalReport {
  /** The encoder in words: "checkpoint runs/x/checkpoints/last.safetensors (epoch 3, step 18)". */
  encoder: string;
  encoder_source: EncoderSource;
  config_name: string;
  engine: string;
  data: string;
  /** 'split' (train -> test, model selection on val when there is one) or 'logo' (SimTriplet's). */
  protocol: ProtocolName;
  feature_dim: number;
  /** Labelled items the probes fit on (logo: over all groups). */
  train_samples: number;
  val_samples?: number;
  test_samples: number;
  class_names: readonly string[];
  /** logo: the groups folded over. */
  groups?: string[];
  /** float16 when the features went through the cache (rounded so every cached run sees the same). */
  features: { dtype: 'float32' | 'float16'; cache?: string };
  /** What the images went through before the encoder: resized and centre-cropped to image_size, scaled for normalization. */
  input: { image_size: number; normalization: Normalization };
  /** encoderFingerprint of the evaluated weights; computed when probes are kept (EvalOptions.onProbe). */
  encoder_fingerprint?: string;
  results: EvalResult[];
  created: string;
  /** With EvalOptions.views: the UMAP, the neighbour grid and the projector's inputs. Not part of the JSON. */
  views?: FeatureViews;
}

/**
 * Builds the encoder and says where its weights came from. `identity` names those weights for the
 * feature cache: the file's path, size and modification time, or the model config and seed.
 */
export async function loadEncoder(
  cfg: Config,
  checkpoint: string | undefined,
  log: (line: string) => void,
): Promise<{ model: EncoderModel; source: string; encoderSource: EncoderSource; identity: unknown }> {
  if (checkpoint) {
    const path = resolveCheckpointPath(checkpoint);
    const ckpt = await readCheckpoint(path);
    // The checkpoint's own model settings win: they are what its weights were trained as.
    const trained = ckpt.state.config.model;
    if (modelText(trained) !== modelText(cfg.model)) {
      log(`model: the config's model (${modelText(cfg.model)}) differs from the checkpoint's (${modelText(trained)}); the checkpoint's is used, as its weights were trained in it`);
    }
    const model = buildEncoder(trained, cfg.seed);
    model.normalization = ckpt.state.normalization;
    const report = loadSafetensorsWeights(model.store, ckpt.file);
    if (report.missing.length > 0) log(`checkpoint: ${formatWeightsReport(report)}`);
    const { epoch, step } = ckpt.state;
    return {
      model,
      source: `checkpoint ${path} (epoch ${epoch}, step ${step})`,
      encoderSource: { kind: 'checkpoint', path, step, epoch, trained_on: ckpt.state.config.data },
      identity: { checkpoint: await fileIdentity(path), seed: cfg.seed },
    };
  }
  const model = buildEncoder(cfg.model, cfg.seed);
  if (cfg.model.weights) {
    try {
      const report = await loadWeights(model.store, cfg.model.weights, { arch: cfg.model.arch });
      log(`weights: ${formatWeightsReport(report)}`);
      await requireWholeBackbone(report, cfg.model);
    } catch (err) {
      model.store.dispose();
      throw err;
    }
    return {
      model,
      source: `weights ${cfg.model.weights}`,
      encoderSource: { kind: 'weights', path: cfg.model.weights, model: cfg.model },
      identity: { model: cfg.model, weights: await fileIdentity(cfg.model.weights), seed: cfg.seed },
    };
  }
  return { model, source: `random initialisation (seed ${cfg.seed})`, encoderSource: { kind: 'random-init', model: cfg.model }, identity: { model: cfg.model, seed: cfg.seed } };
}

/** The model settings that shape an encoder's weights: "resnet50, imagenet stem, width 4". */
function modelText(m: ModelConfig): string {
  return `${m.arch}, ${m.stem} stem, width ${m.width}${m.arch.startsWith('bit-') ? `, ${m.norm} norm` : ''}`;
}

function accuracyLine(name: string, m: ClassificationMetrics): string {
  const pct = (x: number) => `${(100 * x).toFixed(2)}%`;
  return `${name}: accuracy ${pct(m.accuracy)}, balanced accuracy ${pct(m.balanced_accuracy)}, macro F1 ${pct(m.macro_f1)}`;
}

/** What a linear result adds to its log line: the chosen setting (split with val) or the fold scores (logo). */
function resultDetail(r: LinearResult): string {
  if (r.selection) {
    const { chosen, val } = r.selection;
    return ` [chosen on val: base_lr ${chosen.base_lr}, epoch ${chosen.epoch}, val balanced accuracy ${(100 * val.balanced_accuracy).toFixed(2)}%]`;
  }
  if (r.fold_summary) {
    const b = r.fold_summary.balanced_accuracy;
    return ` [${r.folds!.length} folds: balanced accuracy ${(100 * b.mean).toFixed(2)} ± ${(100 * b.std).toFixed(2)}%; test = fold ensemble]`;
  }
  return '';
}

/** Probes need labels on both sides, in the same class order. */
function checkLabelled(name: string, ds: ImageDataset, classNames: readonly string[]): void {
  if (ds.classNames.length === 0 || !ds.labels.some((l) => l >= 0)) throw new UserError(`${name} has no labels to evaluate with`);
  if (ds.classNames.join('\n') !== classNames.join('\n')) {
    throw new UserError(`${name} has classes [${ds.classNames.join(', ')}] but the probe's training data has [${classNames.join(', ')}]`);
  }
}

function featureSet(ds: ImageDataset, x: Float32Array): FeatureSet {
  return { x, y: ds.labels, groups: ds.groups, groupNames: ds.groupNames };
}

/** The splits' parts in the probes: what they fit on, the protocol, and the splits to extract in order. */
interface ProbeSides {
  pool: ImageDataset;
  poolName: string;
  /** The pool's split name in the feature cache and records: probe_train or train. */
  poolSplit: 'probe_train' | 'train';
  classNames: readonly string[];
  protocol: ProtocolName;
  val?: ImageDataset;
  test: ImageDataset;
}

/** Checks the splits can be probed and picks the protocol; `log` gets the notes (or nothing). */
function probeSides(cfg: Config, data: DataSplits, linear: boolean, log: (line: string) => void): ProbeSides {
  // Unlabelled SSL data (patches) comes with separate labelled data to fit the probes on.
  const pool = data.probeTrain ?? data.train;
  const poolName = data.probeTrain ? 'the labelled probe data' : 'the training split';
  const classNames = pool.classNames;
  checkLabelled(poolName, pool, classNames);
  checkLabelled('the test split', data.test, classNames);
  const absent = classNames.filter((_, c) => !pool.labels.includes(c));
  if (absent.length > 0) {
    log(`note: ${poolName} has no labelled item of ${absent.join(', ')}; no probe can predict ${absent.length === 1 ? 'that class' : 'those classes'}`);
  }
  const protocol = resolveProtocol(cfg.eval.protocol, { y: pool.labels, groups: pool.groups }, poolName);
  const val = protocol === 'split' && linear ? data.val : undefined;
  if (val) checkLabelled('the validation split', val, classNames);
  if (data.val && protocol === 'logo') log('note: the validation split is not used by the logo protocol');
  return { pool, poolName, poolSplit: data.probeTrain ? 'probe_train' : 'train', classNames, protocol, val, test: data.test };
}

/** The splits to extract, in the order their images load. */
function splitsOf(sides: ProbeSides): Array<[string, ImageDataset]> {
  return [[sides.poolSplit, sides.pool], ...(sides.val ? [['val', sides.val] as [string, ImageDataset]] : []), ['test', sides.test]];
}

/**
 * Features of `settled`'s item rows from features of the `listed` dataset it came from: the rows of
 * the items that loaded (features are per image in inference mode, so this equals extracting them).
 */
export function keptRows(listed: ImageDataset, x: Float32Array, settled: ImageDataset, dim: number): Float32Array {
  if (settled === listed) return x;
  if (!listed.sources || !settled.sources) throw new Error('keptRows: the datasets name no sources to match their items by');
  const row = new Map(listed.sources.map((s, i) => [s, i]));
  const out = new Float32Array(settled.size * dim);
  settled.sources.forEach((s, k) => {
    const i = row.get(s);
    if (i === undefined) throw new Error(`keptRows: ${s} is not among the listed items`);
    out.set(x.subarray(i * dim, (i + 1) * dim), k * dim);
  });
  return out;
}

export async function evaluate(opts: EvalOptions): Promise<EvalReport> {
  const cfg = opts.config;
  // From before the images are read: the end-to-end feature rate includes decoding.
  const started = performance.now();
  // Streamed: the files are listed now and decode in the background, while the encoder and the
  // runtime are set up and the first batches extracted. The feature cache keys on the final splits.
  const streamed = opts.data ? undefined : await streamDataSplits(cfg.data, cfg.seed);
  const settle = async () => (streamed ? streamed.settled : opts.data!);
  // A load that fails (a bad image under on_bad_image: error) stops the extraction at its next batch.
  const loadFailed = new AbortController();
  streamed?.settled.catch((err: unknown) => loadFailed.abort(err));
  const listed = opts.featureCache !== undefined ? await settle() : (opts.data ?? streamed!.listed);
  const early = probeSides(cfg, listed, opts.linear, opts.log);
  const { model, source, encoderSource, identity } = await loadEncoder(cfg, opts.checkpoint, opts.log);
  const cache = opts.featureCache === undefined ? undefined : new FeatureCache(opts.featureCache);
  // Built on the first split that misses the cache: a fully cached evaluation starts no runtime.
  let extractor: Promise<FeatureExtractor> | undefined;
  try {
    opts.log(`encoder  ${source}`);
    opts.log(`data     ${listed.description}`);
    opts.log(`protocol ${early.protocol}`);
    const dim = model.backbone.featureDim;
    const inference = () =>
      (extractor ??= createInference(model, { runtime: cfg.engine.inference, imageSize: cfg.data.image_size, batchSize: cfg.eval.batch_size, log: opts.log }));
    const extract = async (name: string, ds: ImageDataset): Promise<Float32Array> => {
      const t0 = performance.now();
      const runtime = await inference();
      const bar = createProgress({ label: `features ${name}`, total: ds.size, unit: 'img', stream: opts.progressStream });
      const x = await extractFeatures(runtime, ds, {
        normalization: model.normalization,
        batchSize: cfg.eval.batch_size,
        onProgress: (done) => bar.update(done),
        signal: loadFailed.signal,
      });
      bar.finish();
      opts.log(`features ${name}: ${throughputText(ds.size, performance.now() - t0)}`);
      return x;
    };
    // Features are extracted once per split (or read from the cache); every probe, fold and kNN reuses them.
    const extractedEarly = new Map<string, { ds: ImageDataset; x: Float32Array }>();
    if (!cache) for (const [name, ds] of splitsOf(early)) extractedEarly.set(name, { ds, x: await extract(name, ds) });
    const data = await settle();
    // Where images failed to load, the settled splits lack them: their rows are taken from the features.
    const sides = data === listed ? early : probeSides(cfg, data, opts.linear, () => {});
    if (data !== listed) opts.log(`data     ${data.description} (without the images that failed to load)`);
    const embed = async (name: string, ds: ImageDataset): Promise<FeatureSet> => {
      const prior = extractedEarly.get(name);
      if (prior) return featureSet(ds, keptRows(prior.ds, prior.x, ds, dim));
      const key = { encoder: identity, data: cfg.data, split: name, count: ds.size, dim, normalization: model.normalization };
      const { x, hit } = await cachedFeatures(cache, key, () => extract(name, ds));
      if (hit) opts.log(`features ${name}: from the cache in ${cache!.dir}`);
      return featureSet(ds, x);
    };
    const features: ProbeData = {
      dim,
      classNames: sides.classNames,
      train: await embed(sides.poolSplit, sides.pool),
      val: sides.val ? await embed('val', sides.val) : undefined,
      test: await embed('test', sides.test),
    };
    if (extractor) {
      const images = [features.train, features.val, features.test].reduce((n, set) => n + (set ? set.y.length : 0), 0);
      opts.log(`features ${throughputText(images, performance.now() - started)} end to end${opts.data ? '' : ', loading and decoding included'}`);
    }
    const results = runProbes(opts, features, sides.protocol);
    const views = opts.views
      ? await featureViews({ cfg, dim, classNames: sides.classNames, pool: sides.pool, poolSplit: sides.poolSplit, poolFeatures: features.train.x, test: sides.test, testFeatures: features.test.x })
      : undefined;
    const labelled = (set: FeatureSet | undefined) => (set ? labelledRows(set.y).length : undefined);
    return {
      encoder: source,
      encoder_source: encoderSource,
      config_name: cfg.name,
      engine: opts.engine,
      data: data.description,
      protocol: sides.protocol,
      feature_dim: dim,
      train_samples: labelled(features.train)!,
      val_samples: labelled(features.val),
      test_samples: labelled(features.test)!,
      class_names: sides.classNames,
      groups: sides.protocol === 'logo' ? labelledGroups(features.train).map((g) => groupName(features.train, g)) : undefined,
      features: cache ? { dtype: 'float16', cache: cache.dir } : { dtype: 'float32' },
      input: { image_size: cfg.data.image_size, normalization: model.normalization },
      ...(opts.onProbe && opts.linear ? { encoder_fingerprint: encoderFingerprint(model) } : {}),
      results,
      created: new Date().toISOString(),
      ...(views ? { views } : {}),
    };
  } finally {
    if (extractor) (await extractor.catch(() => undefined))?.dispose();
    model.store.dispose();
  }
}

/** The linear probes (one per label fraction) and the kNN classifier on the extracted features. */
function runProbes(opts: EvalOptions, features: ProbeData, protocol: ProtocolName): EvalResult[] {
  const cfg = opts.config;
  const progress = (label: string, epochs: number): ProbeProgress => {
    const bar = createProgress({ label, total: epochs, unit: 'epoch', stream: opts.progressStream });
    return { onEpoch: (e) => bar.update(e.epoch, { loss: e.loss.toFixed(4) }), finish: () => bar.finish() };
  };
  const protocolOpts = { cfg: cfg.eval.linear, seed: cfg.seed, progress };
  const results: EvalResult[] = [];
  if (opts.linear) {
    for (const fraction of opts.labelFractions ?? [cfg.eval.linear.label_fraction]) {
      const { result: r, probe } = protocol === 'logo' ? fitLogoProbe(features, fraction, protocolOpts) : fitSplitProbe(features, fraction, protocolOpts);
      results.push(r);
      opts.onProbe?.(r, probe);
      opts.log(accuracyLine(`linear probe (${fraction * 100}% labels, ${protocol})`, r.metrics) + resultDetail(r));
    }
  }
  if (opts.knn) {
    const { k, t } = cfg.eval.knn;
    const r = knnProbe(features, k, t);
    results.push(r);
    opts.log(accuracyLine(`kNN (k ${k}, t ${t})`, r.metrics));
  }
  return results;
}
