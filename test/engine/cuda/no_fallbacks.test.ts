/**
 * Every preset's training step, the evaluation and embedding paths run on the CUDA engine without a
 * single host fallback: SimSiam on ResNet-18 (CIFAR stem) and ResNet-50 (ImageNet stem), SimTriplet's
 * three views, the supervised arm's cross-entropy, BiT in its GroupNorm and BatchNorm variants, mixed16
 * with the loss scaler, the linear probe's SGD, the kNN top-k and frozen feature extraction. Run on the
 * host build; the GPU build registers the same kernel table.
 */
import { describe, expect, it } from 'vitest';
import { ConfigSchema } from '../../../src/config/schema.js';
import { makeSynthetic } from '../../../src/data/synthetic.js';
import { tf } from '../../../src/engine/tf.js';
import { fallbackRuns, resetKernelStats } from '../../../src/engine/kernel_stats.js';
import { extractFeatures } from '../../../src/eval/features.js';
import { createTrainingGraphExtractor } from '../../../src/eval/training_graph_extractor.js';
import { knnClassify } from '../../../src/eval/knn.js';
import { trainLinearProbe } from '../../../src/eval/linear_probe.js';
import { buildEncoder, buildSslModel } from '../../../src/model/build.js';
import { LossScaler } from '../../../src/optim/loss_scale.js';
import { Sgd } from '../../../src/optim/sgd.js';
import { trainStep } from '../../../src/train/step.js';
import { Rng } from '../../../src/util/rng.js';
import { CUDA_HOST, loadCudaHost } from './helpers.js';

const load = await loadCudaHost();

function fallbacks(): string {
  return [...fallbackRuns].map(([k, n]) => `${k} x${n}`).join(', ');
}

interface StepCase {
  label: string;
  model: Record<string, unknown>;
  method: Record<string, unknown>;
  views: number;
  side: number;
  precision?: 'fp32' | 'mixed16';
  labels?: boolean;
}

const METHOD = { proj_layers: 2, proj_dim: 16, pred_hidden: 8 };
const CASES: StepCase[] = [
  { label: 'SimSiam, ResNet-18 CIFAR', model: { arch: 'resnet18', stem: 'cifar', width: 8 }, method: METHOD, views: 2, side: 16 },
  { label: 'SimSiam, ResNet-50 ImageNet stem', model: { arch: 'resnet50', stem: 'imagenet', width: 8 }, method: { ...METHOD, proj_layers: 3 }, views: 2, side: 32 },
  { label: 'SimTriplet, three views', model: { arch: 'resnet18', stem: 'cifar', width: 8 }, method: { ...METHOD, name: 'simtriplet' }, views: 3, side: 16 },
  { label: 'supervised, cross-entropy', model: { arch: 'resnet18', stem: 'cifar', width: 8 }, method: { name: 'supervised' }, views: 1, side: 16, labels: true },
  { label: 'BiT GroupNorm + weight standardisation', model: { arch: 'bit-r50x1', width: 8, norm: 'group' }, method: METHOD, views: 2, side: 32 },
  { label: 'BiT BatchNorm variant', model: { arch: 'bit-r50x1', width: 8, norm: 'batch', stem: 'cifar' }, method: METHOD, views: 2, side: 16 },
  { label: 'SimSiam mixed16 with loss scaling', model: { arch: 'resnet18', stem: 'cifar', width: 8 }, method: METHOD, views: 2, side: 16, precision: 'mixed16' },
];

describe.skipIf(!load.ok)('no host fallback on the CUDA engine', () => {
  for (const c of CASES) {
    it(`in a training step: ${c.label}`, async () => {
      await tf.setBackend(CUDA_HOST);
      const cfg = ConfigSchema.parse({ model: c.model, method: c.method, engine: { precision: c.precision ?? 'fp32' } });
      const model = buildSslModel(cfg.model, cfg.method, 3, { precision: c.precision, numClasses: c.labels ? 5 : undefined });
      const opt = new Sgd(model.store.trainable(), { momentum: 0.9, weightDecay: 5e-4, decayNormAndBias: true });
      const batch = 4;
      const rng = new Rng(`no-fallback ${c.label}`);
      const views = Array.from({ length: c.views }, () => Float32Array.from({ length: batch * c.side * c.side * 3 }, () => rng.normal()));
      const inputs = { ...(c.precision === 'mixed16' ? { scaler: new LossScaler() } : {}), ...(c.labels ? { labels: Int32Array.from([0, 1, 2, 3]) } : {}) };
      // Two steps: the first creates the momentum buffers, the second is the steady state.
      trainStep(model.method, model.store, opt, views, c.side, () => 0.01, inputs);
      resetKernelStats();
      const out = trainStep(model.method, model.store, opt, views, c.side, () => 0.01, inputs);
      expect(Number.isFinite(out.loss)).toBe(true);
      expect(fallbacks(), 'host fallbacks').toBe('');
      opt.dispose();
      model.store.dispose();
    });
  }

  it('in feature extraction (embed, eval, kNN monitor)', async () => {
    await tf.setBackend(CUDA_HOST);
    const cfg = ConfigSchema.parse({ model: { arch: 'resnet18', stem: 'cifar', width: 8 } });
    const model = buildEncoder(cfg.model, 1);
    const ds = makeSynthetic({ size: 16, count: 6, seed: 0, split: 'test' });
    resetKernelStats();
    const feats = await extractFeatures(createTrainingGraphExtractor(model.backbone, 16), ds, { normalization: model.normalization, batchSize: 4 });
    expect(feats.length).toBe(6 * model.backbone.featureDim);
    expect(fallbacks(), 'host fallbacks').toBe('');
    model.store.dispose();
  });

  it('in the linear probe and the kNN classifier', async () => {
    await tf.setBackend(CUDA_HOST);
    const rng = new Rng('probe');
    const dim = 16;
    const n = 40;
    const x = Float32Array.from({ length: n * dim }, () => rng.normal());
    const y = Int32Array.from({ length: n }, (_, i) => i % 4);
    const cfg = ConfigSchema.parse({}).eval.linear;
    resetKernelStats();
    const probe = trainLinearProbe(x, y, dim, 4, { ...cfg, epochs: 2, batch_size: 16 }, 0, { kernel: 'tfjs' });
    expect(probe.predict(x).length).toBe(n);
    const knn = knnClassify(x, y, x.subarray(0, 8 * dim), dim, 4, 10, 0.1);
    expect(knn.length).toBe(8);
    expect(fallbacks(), 'host fallbacks').toBe('');
  });
});
