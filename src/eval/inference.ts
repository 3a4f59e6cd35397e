/**
 * The one place that picks how features are computed for eval, embed and predict (engine.inference).
 *
 * auto: on GPU engines the training graph (the GPU is the fast path); on CPU engines the first
 * available runtime of AUTO_INFERENCE_ORDER. Whatever is picked is checked on the run's first batch
 * (its first CHECK_IMAGES images) against the training graph on the active engine (relative error <
 * INFERENCE_TOLERANCE); on a
 * mismatch, or if the runtime fails on that batch, the run says so in one line and goes on with the
 * training graph, so a wrong runtime can cost speed but never results.
 *
 * Precision: eval, embed and predict build their encoders in float32, and every runtime computes in
 * float32, so the check compares float32 with float32. An encoder built with engine.precision
 * mixed16 (only the trainer builds one) rounds to the float16 grid at layer boundaries; a float32
 * runtime then differs by ~1e-3 and the check hands the run back to the training graph: its features
 * stay those of the model as trained. The trainer's kNN monitor therefore uses the training graph
 * directly (see knnMonitor in src/train/trainer.ts).
 */
import { activeEngine, type ConcreteEngine } from '../engine/engine.js';
import { createOnednnPlanExtractor, onednnPlanAvailable } from '../engine/onednn/inference_plan.js';
import { createOnnxruntimeExtractor, onnxruntimeUnavailable } from '../engine/onnxruntime/extractor.js';
import { relativeError } from '../check/compare.js';
import type { EncoderModel } from '../model/build.js';
import { UserError } from '../util/errors.js';
import type { ConcreteInferenceRuntime, FeatureExtractor, InferenceRuntime } from './extractor.js';
import { createTrainingGraphExtractor } from './training_graph_extractor.js';

/** auto's order on CPU engines: the first available wins (the benchmark, bench:infer, sets it). */
export const AUTO_INFERENCE_ORDER: readonly ConcreteInferenceRuntime[] = ['onednn-plan', 'onnxruntime', 'tfjs'];

/** Engines whose training graph runs on a GPU: auto keeps their features there. */
const GPU_ENGINES: ReadonlySet<ConcreteEngine> = new Set(['cuda', 'tensorflow-gpu']);

/** The first-batch check's bound: the golden fixtures' float32 parity bound. */
export const INFERENCE_TOLERANCE = 1e-4;

export interface RuntimeAvailability {
  runtime: ConcreteInferenceRuntime;
  /** Why not, when unavailable. */
  unavailable?: string;
}

/** Each runtime's availability on this machine, in AUTO_INFERENCE_ORDER. */
export async function inferenceAvailability(): Promise<RuntimeAvailability[]> {
  const why: Record<ConcreteInferenceRuntime, () => Promise<string | undefined>> = {
    'onednn-plan': async () => (onednnPlanAvailable() ? undefined : 'the oneDNN addon here builds no inference plans'),
    onnxruntime: onnxruntimeUnavailable,
    tfjs: async () => undefined,
  };
  return Promise.all(
    AUTO_INFERENCE_ORDER.map(async (runtime) => {
      const unavailable = await why[runtime]();
      return unavailable === undefined ? { runtime } : { runtime, unavailable };
    }),
  );
}

/** What auto picks on `engine`, given the runtimes' availability. */
export function autoInferenceRuntime(engine: ConcreteEngine, availability: readonly RuntimeAvailability[]): ConcreteInferenceRuntime {
  if (GPU_ENGINES.has(engine)) return 'tfjs';
  return availability.find((a) => a.unavailable === undefined)?.runtime ?? 'tfjs';
}

/** The concrete runtime `requested` means on `engine`; a named runtime that cannot run here is a UserError. */
export function resolveInferenceRuntime(
  requested: InferenceRuntime,
  engine: ConcreteEngine,
  availability: readonly RuntimeAvailability[],
  key = 'engine.inference',
): ConcreteInferenceRuntime {
  if (requested === 'auto') return autoInferenceRuntime(engine, availability);
  const why = availability.find((a) => a.runtime === requested)?.unavailable;
  if (why !== undefined) throw new UserError(`${key}: got '${requested}', which is unavailable here: ${why}. Run 'simtrip doctor' for details, or use ${key}: auto`);
  return requested;
}

export interface InferenceOptions {
  /** engine.inference (or a command's --inference). */
  runtime: InferenceRuntime;
  imageSize: number;
  /** Images per call (eval.batch_size, --batch-size). */
  batchSize: number;
  log: (line: string) => void;
  /** The active engine; activeEngine()'s when absent. */
  engine?: ConcreteEngine;
  /** The key named in errors about the runtime. */
  key?: string;
  /** The key of batchSize, named when a batch does not fit in GPU memory. */
  batchKey?: string;
}

function createRuntime(runtime: ConcreteInferenceRuntime, model: EncoderModel, opts: InferenceOptions): Promise<FeatureExtractor> {
  switch (runtime) {
    case 'onednn-plan':
      return Promise.resolve(createOnednnPlanExtractor(model, opts.imageSize, { batchSize: opts.batchSize }));
    case 'onnxruntime':
      return createOnnxruntimeExtractor(model, opts.imageSize);
    case 'tfjs':
      return Promise.resolve(createTrainingGraphExtractor(model.backbone, opts.imageSize, { batchKey: opts.batchKey }));
  }
}

/**
 * The feature extractor for this run: the runtime engine.inference names (auto: the fastest here),
 * checked on its first batch against the training graph. Dispose it when done.
 */
export async function createInference(model: EncoderModel, opts: InferenceOptions): Promise<FeatureExtractor> {
  const engine = opts.engine ?? activeEngine()?.engine ?? 'cpu';
  const runtime = resolveInferenceRuntime(opts.runtime, engine, await inferenceAvailability(), opts.key);
  const reference = createTrainingGraphExtractor(model.backbone, opts.imageSize, { batchKey: opts.batchKey });
  if (runtime === 'tfjs') {
    opts.log(`inference ${reference.description}`);
    return reference;
  }
  let candidate: FeatureExtractor;
  try {
    candidate = await createRuntime(runtime, model, opts);
  } catch (err) {
    if (opts.runtime !== 'auto') throw new UserError(`${opts.key ?? 'engine.inference'}: got '${runtime}', which failed to start: ${(err as Error).message}`);
    opts.log(`inference: ${runtime} failed to start (${(err as Error).message}); using the training graph`);
    opts.log(`inference ${reference.description}`);
    return reference;
  }
  opts.log(`inference ${candidate.description}`);
  return checkedExtractor(candidate, reference, opts.log);
}

/** Runs `use` with this run's extractor (createInference) and disposes it however `use` ends. */
export async function withInference<T>(model: EncoderModel, opts: InferenceOptions, use: (extractor: FeatureExtractor) => Promise<T>): Promise<T> {
  const extractor = await createInference(model, opts);
  try {
    return await use(extractor);
  } finally {
    extractor.dispose();
  }
}

/**
 * Images of the first batch the check runs through the training graph too: features are per image in
 * inference mode, so a few rows test the whole graph, and the slow path costs a few images, not a batch.
 */
export const CHECK_IMAGES = 8;

/**
 * `candidate`, trusted only after its features of the first batch's first CHECK_IMAGES images agree
 * with `reference`'s (relative error < INFERENCE_TOLERANCE); otherwise, or if it throws on that
 * batch, the reference from then on (that batch included).
 */
export function checkedExtractor(candidate: FeatureExtractor, reference: FeatureExtractor, log: (line: string) => void): FeatureExtractor {
  let current: FeatureExtractor | undefined;
  const fallBack = (why: string): FeatureExtractor => {
    log(`inference: ${candidate.runtime} ${why}; using the training graph for this run`);
    candidate.dispose();
    return reference;
  };
  const firstBatch = async (images: Float32Array, n: number): Promise<Float32Array> => {
    let got: Float32Array;
    try {
      got = await candidate.run(images, n);
    } catch (err) {
      current = fallBack(`failed on the first batch (${(err as Error).message.split('\n')[0]})`);
      return reference.run(images, n);
    }
    const k = Math.min(n, CHECK_IMAGES);
    const side = reference.imageSize;
    const expected = await reference.run(images.subarray(0, k * side * side * 3), k);
    const dim = reference.featureDim;
    const sized = got.length === n * dim;
    const err = sized ? relativeError(got.subarray(0, k * dim), expected) : Infinity;
    if (!(err < INFERENCE_TOLERANCE)) {
      const what = sized ? `relative error ${err.toExponential(2)}` : `${got.length} values for ${n * dim}`;
      current = fallBack(`disagrees with the training graph on the first batch (${what}, bound ${INFERENCE_TOLERANCE})`);
      return reference.run(images, n);
    }
    current = candidate;
    return got;
  };
  return {
    get runtime() {
      return (current ?? candidate).runtime;
    },
    get description() {
      return (current ?? candidate).description;
    },
    featureDim: reference.featureDim,
    imageSize: reference.imageSize,
    run: (images, n) => (current ? current.run(images, n) : firstBatch(images, n)),
    dispose(): void {
      if (current !== reference) candidate.dispose();
      reference.dispose();
    },
  };
}

/** "N images in S s (R img/s)": the end-to-end rate eval, embed and predict report. */
export function throughputText(images: number, ms: number): string {
  const s = ms / 1000;
  return `${images} images in ${s.toFixed(1)} s (${(images / Math.max(s, 1e-9)).toFixed(1)} img/s)`;
}
