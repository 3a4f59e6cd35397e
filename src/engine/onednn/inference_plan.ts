/**
 * The oneDNN engine's inference plan: the encoder's inference graph (emitFeatures, BatchNorm folded,
 * ReLU and residual adds fused; src/model/inference_graph.ts) compiled once into native oneDNN
 * primitives (native/onednn/plan.cc), run as a FeatureExtractor. Where the addon lacks the plan, the
 * same optimised graph runs on tfjs ops (createTfjsGraphExtractor in src/model/inference_graph_tfjs.ts).
 */
import type { FeatureExtractor } from '../../eval/extractor.js';
import type { EncoderModel } from '../../model/build.js';
import { inferenceGraph, type InferenceGraph } from '../../model/inference_graph.js';
import { loadNative, type NativeAddon, type NativePlan } from './native.js';
import { encodePlan } from './plan_encoding.js';

export interface PlanOptions {
  /** Images per native call; the plan picks one sized for the cache when absent. */
  batchSize?: number;
}

type PlanAddon = NativeAddon & Required<Pick<NativeAddon, 'planCreate' | 'planRun' | 'planInfo' | 'planDispose'>>;

function hasPlan(addon: NativeAddon): addon is PlanAddon {
  return typeof addon.planCreate === 'function' && typeof addon.planRun === 'function';
}

/** Whether the loaded oneDNN addon can build inference plans. */
export function onednnPlanAvailable(): boolean {
  if (process.env.SIMTRIP_ONEDNN_DISABLE === '1') return false;
  const native = loadNative();
  return native.ok && hasPlan(native.addon);
}

/**
 * Images per native micro-batch when the caller names none: about 8 MiB of the widest activation
 * (64 channels at the image size) per micro-batch, so a layer's input and output stay in the
 * last-level cache; at least 4 images so that the convs' weights are reused, at most 64.
 */
export function defaultMicroBatch(imageSize: number): number {
  const widest = 64 * imageSize * imageSize * 4;
  return Math.max(4, Math.min(64, Math.floor((8 * 2 ** 20) / widest)));
}

/** What the plan fused, for the extractor's description. */
function fusionSummary(graph: InferenceGraph): string {
  const convs = graph.ops.filter((op) => op.kind === 'conv');
  const relu = convs.filter((op) => op.relu).length;
  const sum = convs.filter((op) => op.sum !== undefined).length;
  const norms = graph.ops.filter((op) => op.kind === 'groupNorm' || op.kind === 'batchNorm').length;
  return `${convs.length} convs (norms after them folded in, ${relu} with ReLU, ${sum} with the residual add fused)${norms ? `, ${norms} standalone norms` : ''}`;
}

export interface OnednnPlanExtractor extends FeatureExtractor {
  /** The plan's primitives at the full micro-batch and the implementation oneDNN picked for each. */
  primitives(): string;
}

export function createOnednnPlanExtractor(model: EncoderModel, imageSize: number, opts: PlanOptions = {}): OnednnPlanExtractor {
  const native = loadNative();
  if (!native.ok) throw new Error(`onednn-plan: ${native.reason} (${native.hint})`);
  const addon = native.addon;
  if (!hasPlan(addon)) throw new Error('onednn-plan: the native addon build/Release/simtrip_onednn.node predates the inference plan; rebuild it with npm run build:native');
  if (!Number.isInteger(imageSize) || imageSize <= 0) throw new Error(`onednn-plan: imageSize must be a positive integer, got ${imageSize}`);
  const microBatch = opts.batchSize ?? defaultMicroBatch(imageSize);
  if (!Number.isInteger(microBatch) || microBatch <= 0) throw new Error(`onednn-plan: batchSize must be a positive integer, got ${microBatch}`);

  const graph = inferenceGraph(model.backbone);
  const encoded = encodePlan(graph);
  let plan: NativePlan | null = addon.planCreate(encoded.ops, encoded.eps, encoded.params, imageSize, microBatch);
  const featureDim = graph.featureDim;
  const imageFloats = imageSize * imageSize * 3;
  const live = (): NativePlan => {
    if (!plan) throw new Error('onednn-plan: the extractor was disposed');
    return plan;
  };
  // Runs go off the main thread (planRunAsync) one at a time: a plan's buffers serve one batch. The
  // native plan is freed only once no run is queued or in flight.
  const runNative = addon.planRunAsync
    ? (handle: NativePlan, images: Float32Array, n: number, out: Float32Array) => addon.planRunAsync!(handle, images, n, out)
    : async (handle: NativePlan, images: Float32Array, n: number, out: Float32Array) => addon.planRun(handle, images, n, out);
  let queue: Promise<void> = Promise.resolve();
  let pending = 0;
  let disposed: NativePlan | null = null;
  const freeWhenIdle = () => {
    if (pending === 0 && disposed) {
      addon.planDispose(disposed);
      disposed = null;
    }
  };
  const info = addon.info();
  return {
    runtime: 'onednn-plan',
    description: `oneDNN ${info.version} inference plan: ${fusionSummary(graph)}, micro-batch ${microBatch}, ${info.threads} thread${info.threads === 1 ? '' : 's'}`,
    featureDim,
    imageSize,
    async run(images: Float32Array, n: number): Promise<Float32Array> {
      if (!Number.isInteger(n) || n < 0) throw new Error(`onednn-plan: n must be a non-negative integer, got ${n}`);
      if (images.length !== n * imageFloats) {
        throw new Error(`onednn-plan: expected ${n} images of ${imageSize}x${imageSize}x3 (${n * imageFloats} floats), got ${images.length} floats`);
      }
      const out = new Float32Array(n * featureDim);
      if (n === 0) return out;
      const handle = live();
      pending++;
      const turn = queue.then(() => runNative(handle, images, n, out));
      queue = turn.catch(() => undefined);
      try {
        await turn;
      } finally {
        pending--;
        freeWhenIdle();
      }
      return out;
    },
    primitives: () => {
      // It builds the full micro-batch's primitives if need be, which a run on the pool may be doing.
      if (pending > 0) throw new Error('onednn-plan: primitives() while a run is in flight; await the runs first');
      return addon.planInfo(live());
    },
    dispose(): void {
      if (!plan) return;
      disposed = plan;
      plan = null;
      freeWhenIdle();
    },
  };
}
