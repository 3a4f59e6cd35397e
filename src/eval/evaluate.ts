/**
 * `simtrip eval`: frozen-encoder evaluation. Features are extracted once per split, then the linear
 * probe (one per label fraction) and/or the weighted kNN classifier run on them.
 *
 * The encoder is a simtrip checkpoint, else the config's `model.weights`, else the seeded random
 * initialisation: the last two are the baselines papers compare against.
 */
import type { Config } from '../config/schema.js';
import { loadDataSplits } from '../data/index.js';
import { buildEncoder, type EncoderModel } from '../model/build.js';
import { loadWeights, formatWeightsReport } from '../model/weights.js';
import { readCheckpoint, resolveCheckpointPath } from '../train/checkpoint.js';
import { createProgress } from '../report/progress.js';
import { extractFeatures } from './features.js';
import { knnClassify } from './knn.js';
import { runLinearProbe, type ProbeProtocol } from './linear_probe.js';
import { classificationMetrics, type ClassificationMetrics } from './metrics.js';

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
}

export interface EvalResult {
  protocol: 'linear' | 'knn';
  /** Linear: the probe's optimiser and data settings; kNN: k and temperature. */
  settings: ProbeProtocol | { k: number; t: number; train_samples: number; test_samples: number };
  metrics: ClassificationMetrics;
}

export interface EvalReport {
  encoder: string;
  config_name: string;
  engine: string;
  data: string;
  feature_dim: number;
  train_samples: number;
  test_samples: number;
  class_names: readonly string[];
  results: EvalResult[];
  created: string;
}

/** Builds the encoder and says where its weights came from. */
export async function loadEncoder(cfg: Config, checkpoint: string | undefined, log: (line: string) => void): Promise<{ model: EncoderModel; source: string }> {
  if (checkpoint) {
    const path = resolveCheckpointPath(checkpoint);
    const ckpt = await readCheckpoint(path);
    // The checkpoint's own model settings win: they are what its weights were trained as.
    const model = buildEncoder(ckpt.state.config.model, cfg.seed);
    model.normalization = ckpt.state.normalization;
    const report = await loadWeights(model.store, path);
    if (report.missing.length > 0) log(`checkpoint: ${formatWeightsReport(report)}`);
    return { model, source: `checkpoint ${path} (epoch ${ckpt.state.epoch})` };
  }
  const model = buildEncoder(cfg.model, cfg.seed);
  if (cfg.model.weights) {
    log(`weights: ${formatWeightsReport(await loadWeights(model.store, cfg.model.weights))}`);
    return { model, source: `weights ${cfg.model.weights}` };
  }
  return { model, source: `random initialisation (seed ${cfg.seed})` };
}

function accuracyLine(name: string, m: ClassificationMetrics): string {
  const pct = (x: number) => `${(100 * x).toFixed(2)}%`;
  return `${name}: accuracy ${pct(m.accuracy)}, balanced accuracy ${pct(m.balanced_accuracy)}, macro F1 ${pct(m.macro_f1)}`;
}

export async function evaluate(opts: EvalOptions): Promise<EvalReport> {
  const cfg = opts.config;
  const data = await loadDataSplits(cfg.data, cfg.seed);
  if (data.train.classNames.length === 0) throw new Error(`${data.description} has no labels to evaluate with`);
  const { model, source } = await loadEncoder(cfg, opts.checkpoint, opts.log);
  try {
    opts.log(`encoder  ${source}`);
    opts.log(`data     ${data.description}`);
    const featureOpts = { imageSize: cfg.data.image_size, normalization: model.normalization, batchSize: cfg.eval.batch_size };
    const embed = (split: 'train' | 'test') => {
      const ds = data[split];
      const bar = createProgress({ label: `features ${split}`, total: ds.size, unit: 'img', stream: opts.progressStream });
      const x = extractFeatures(model.backbone, ds, { ...featureOpts, onProgress: (done) => bar.update(done) });
      bar.finish();
      return x;
    };
    const trainX = embed('train');
    const testX = embed('test');
    const dim = model.backbone.featureDim;
    const classNames = data.train.classNames;
    const results: EvalResult[] = [];
    if (opts.linear) {
      for (const fraction of opts.labelFractions ?? [cfg.eval.linear.label_fraction]) {
        const linearCfg = { ...cfg.eval.linear, label_fraction: fraction };
        const bar = createProgress({ label: `linear probe ${fraction}`, total: linearCfg.epochs, unit: 'epoch', stream: opts.progressStream });
        const r = runLinearProbe({
          trainX,
          trainY: data.train.labels,
          testX,
          testY: data.test.labels,
          dim,
          classNames,
          cfg: linearCfg,
          seed: cfg.seed,
          onEpoch: (e) => bar.update(e.epoch, { loss: e.loss.toFixed(4) }),
        });
        bar.finish();
        results.push({ protocol: 'linear', settings: r.protocol, metrics: r.metrics });
        opts.log(accuracyLine(`linear probe (${fraction * 100}% labels)`, r.metrics));
      }
    }
    if (opts.knn) {
      const { k, t } = cfg.eval.knn;
      const pred = knnClassify(trainX, data.train.labels, testX, dim, classNames.length, k, t);
      const metrics = classificationMetrics(data.test.labels, pred, classNames);
      results.push({ protocol: 'knn', settings: { k, t, train_samples: data.train.size, test_samples: data.test.size }, metrics });
      opts.log(accuracyLine(`kNN (k ${k}, t ${t})`, metrics));
    }
    return {
      encoder: source,
      config_name: cfg.name,
      engine: opts.engine,
      data: data.description,
      feature_dim: dim,
      train_samples: data.train.size,
      test_samples: data.test.size,
      class_names: classNames,
      results,
      created: new Date().toISOString(),
    };
  } finally {
    model.store.dispose();
  }
}
