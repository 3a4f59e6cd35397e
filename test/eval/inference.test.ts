/**
 * engine.inference: which runtime auto picks per engine, what a named runtime that cannot run does,
 * and the first-batch check that hands a run back to the training graph when a runtime disagrees.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { ModelSchema } from '../../src/config/schema.js';
import { makeSynthetic } from '../../src/data/synthetic.js';
import { tf } from '../../src/engine/tf.js';
import type { FeatureExtractor } from '../../src/eval/extractor.js';
import { extractFeatures } from '../../src/eval/features.js';
import {
  AUTO_INFERENCE_ORDER,
  autoInferenceRuntime,
  checkedExtractor,
  createInference,
  inferenceAvailability,
  resolveInferenceRuntime,
  type RuntimeAvailability,
} from '../../src/eval/inference.js';
import { createTrainingGraphExtractor } from '../../src/eval/training_graph_extractor.js';
import { buildBackbone, buildEncoder, type EncoderModel } from '../../src/model/build.js';
import { ParamStore } from '../../src/model/params.js';
import { UserError } from '../../src/util/errors.js';
import { Rng } from '../../src/util/rng.js';
import { relativeError, useCpuBackend } from '../helpers.js';
import { perturb, tinySgd } from '../model/tiny.js';

beforeAll(useCpuBackend);

const ALL: RuntimeAvailability[] = AUTO_INFERENCE_ORDER.map((runtime) => ({ runtime }));
const without = (...names: string[]): RuntimeAvailability[] =>
  ALL.map((a) => (names.includes(a.runtime) ? { runtime: a.runtime, unavailable: `${a.runtime} is not here` } : a));

/** Random weights and running statistics, so no parameter sits at its initialisation. */
function trainedLooking(model: Record<string, unknown>): EncoderModel {
  const enc = buildEncoder(ModelSchema.parse(model), 3);
  const sgd = tinySgd(enc.store);
  perturb(enc.store, sgd, 11);
  sgd.dispose();
  return enc;
}

describe('which runtime', () => {
  it('auto keeps GPU engines on the training graph and takes the first available runtime on CPU engines', () => {
    for (const engine of ['cuda', 'tensorflow-gpu'] as const) expect(autoInferenceRuntime(engine, ALL)).toBe('tfjs');
    for (const engine of ['onednn', 'cpu', 'tensorflow', 'wasm'] as const) {
      expect(autoInferenceRuntime(engine, ALL)).toBe(AUTO_INFERENCE_ORDER[0]);
      expect(autoInferenceRuntime(engine, without('onednn-plan'))).toBe('onnxruntime');
      expect(autoInferenceRuntime(engine, without('onednn-plan', 'onnxruntime'))).toBe('tfjs');
    }
    expect(resolveInferenceRuntime('auto', 'onednn', without('onednn-plan'))).toBe('onnxruntime');
  });

  it('a named runtime is used on any engine; one that cannot run here is a one-line UserError naming key, value and why', () => {
    expect(resolveInferenceRuntime('onnxruntime', 'cuda', ALL)).toBe('onnxruntime');
    expect(resolveInferenceRuntime('tfjs', 'onednn', ALL)).toBe('tfjs');
    const named = () => resolveInferenceRuntime('onednn-plan', 'onednn', without('onednn-plan'), '--inference');
    expect(named).toThrow(UserError);
    expect(named).toThrow(/^--inference: got 'onednn-plan', which is unavailable here: onednn-plan is not here\. Run 'simtrip doctor' for details, or use --inference: auto$/);
  });

  it('the training graph is always available, and onnxruntime-node (a dependency) loads here', async () => {
    const availability = await inferenceAvailability();
    expect(availability.map((a) => a.runtime)).toEqual([...AUTO_INFERENCE_ORDER]);
    expect(availability.find((a) => a.runtime === 'tfjs')!.unavailable).toBeUndefined();
    expect(availability.find((a) => a.runtime === 'onnxruntime')!.unavailable).toBeUndefined();
  });
});

describe('the first-batch check', () => {
  const model = () => trainedLooking({ arch: 'resnet18', stem: 'cifar', width: 4 });
  const ds = makeSynthetic({ size: 16, count: 7, seed: 3, split: 'test' });
  const opts = (m: EncoderModel) => ({ normalization: m.normalization, batchSize: 3 });

  /** The reference with every feature scaled: wrong by `factor - 1` relative. */
  function scaled(reference: FeatureExtractor, factor: number, disposed: string[]): FeatureExtractor {
    return {
      ...reference,
      runtime: 'onnxruntime',
      description: 'scaled',
      run: async (x, n) => (await reference.run(x, n)).map((v) => v * factor),
      dispose: () => disposed.push('candidate'),
    };
  }

  it('keeps a runtime within the bound, and falls back for the whole run on one beyond it, in one line', async () => {
    const m = model();
    const reference = createTrainingGraphExtractor(m.backbone, 16);
    const expected = await extractFeatures(reference, ds, opts(m));
    for (const [factor, kept] of [
      [1 + 1e-6, true],
      [1 + 1e-3, false],
    ] as const) {
      const lines: string[] = [];
      const disposed: string[] = [];
      const checked = checkedExtractor(scaled(reference, factor, disposed), reference, (l) => lines.push(l));
      const got = await extractFeatures(checked, ds, opts(m));
      expect(checked.runtime).toBe(kept ? 'onnxruntime' : 'tfjs');
      if (kept) {
        expect(lines).toEqual([]);
        expect(relativeError(got, expected)).toBeCloseTo(1e-6, 7);
      } else {
        expect(lines).toEqual([expect.stringMatching(/^inference: onnxruntime disagrees with the training graph on the first batch \(relative error 1\.00e-3, bound 0\.0001\); using the training graph for this run$/)]);
        expect(disposed).toEqual(['candidate']);
        // Nothing lost: every batch, the first included, is the training graph's.
        expect(got).toEqual(expected);
      }
    }
    m.store.dispose();
  });

  it('falls back when the runtime throws on the first batch', async () => {
    const m = model();
    const reference = createTrainingGraphExtractor(m.backbone, 16);
    const lines: string[] = [];
    const broken: FeatureExtractor = { ...reference, runtime: 'onednn-plan', run: async () => Promise.reject(new Error('no primitive for this shape')) };
    const checked = checkedExtractor(broken, reference, (l) => lines.push(l));
    expect(await extractFeatures(checked, ds, opts(m))).toEqual(await extractFeatures(reference, ds, opts(m)));
    expect(lines).toEqual(["inference: onednn-plan failed on the first batch (no primitive for this shape); using the training graph for this run"]);
    m.store.dispose();
  });

  it('mixed16: a float32 runtime disagrees with an encoder that rounds to float16, and the run keeps the model as trained', async () => {
    const store = new ParamStore();
    const backbone = buildBackbone({ store, rng: new Rng(5, 'init'), precision: 'mixed16' }, ModelSchema.parse({ arch: 'resnet18', stem: 'cifar', width: 4 }));
    const m: EncoderModel = { store, backbone, normalization: 'imagenet' };
    const lines: string[] = [];
    const extractor = await createInference(m, { runtime: 'onnxruntime', imageSize: 16, batchSize: 3, log: (l) => lines.push(l), engine: 'cpu' });
    const got = await extractFeatures(extractor, ds, opts(m));
    expect(extractor.runtime).toBe('tfjs');
    expect(lines[1]).toMatch(/^inference: onnxruntime disagrees with the training graph on the first batch \(relative error \d\.\d\de-[34]/);
    expect(got).toEqual(await extractFeatures(createTrainingGraphExtractor(backbone, 16), ds, opts(m)));
    extractor.dispose();
    store.dispose();
  });

  it.each(['onnxruntime', 'tfjs', 'auto'] as const)('%s: features as the training graph gives them, no tensor left behind', async (runtime) => {
    const m = model();
    const lines: string[] = [];
    const reference = await extractFeatures(createTrainingGraphExtractor(m.backbone, 16), ds, opts(m));
    const before = tf.memory().numTensors;
    const extractor = await createInference(m, { runtime, imageSize: 16, batchSize: 3, log: (l) => lines.push(l), engine: 'cpu' });
    const got = await extractFeatures(extractor, ds, opts(m));
    expect(extractor.runtime).toBe(runtime === 'auto' ? autoInferenceRuntime('cpu', await inferenceAvailability()) : runtime);
    expect(lines).toEqual([expect.stringMatching(/^inference /)]);
    extractor.dispose();
    expect(tf.memory().numTensors).toBe(before);
    expect(relativeError(got, reference)).toBeLessThan(runtime === 'onnxruntime' ? 1e-5 : 1e-4);
    m.store.dispose();
  });
});
