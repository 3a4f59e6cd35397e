/**
 * The 'onnxruntime' inference runtime: the encoder's inference graph (the same emitFeatures the ONNX
 * export writes, built in memory with an NHWC input so batches go in as preprocessEval gives them)
 * run by onnxruntime-node's CPU execution provider. Sessions are tuned for throughput on one batch at
 * a time: every graph optimisation (conv + BatchNorm + ReLU fusion, constant folding), intra-op
 * threads = cores, sequential execution.
 */
import { availableParallelism } from 'node:os';
import type { FeatureExtractor } from '../../eval/extractor.js';
import { encoderOnnx, ONNX_FEATURES, ONNX_INPUT } from '../../export/onnx_encoder.js';
import type { EncoderModel } from '../../model/build.js';

type Ort = typeof import('onnxruntime-node');

let loaded: Promise<{ ort: Ort } | { error: string }> | undefined;

/** onnxruntime-node, loaded once; its native binding is what can fail (a missing or foreign binary). */
function loadOrt(): Promise<{ ort: Ort } | { error: string }> {
  loaded ??= import('onnxruntime-node').then(
    (m) => {
      const ort = ((m as { default?: Ort }).default ?? m) as Ort;
      return typeof ort.InferenceSession?.create === 'function' ? { ort } : { error: 'the package has no InferenceSession' };
    },
    (err: unknown) => ({ error: String((err as Error).message ?? err).split('\n')[0]! }),
  );
  return loaded;
}

/** Why onnxruntime-node cannot run here, or undefined when it can. */
export async function onnxruntimeUnavailable(): Promise<string | undefined> {
  const r = await loadOrt();
  return 'error' in r ? `onnxruntime-node cannot load: ${r.error}` : undefined;
}

/** onnxruntime-node's version, for doctor and the benchmark (undefined when it cannot load). */
export async function onnxruntimeVersion(): Promise<string | undefined> {
  const r = await loadOrt();
  return 'ort' in r ? r.ort.env.versions.common : undefined;
}

export interface OnnxruntimeOptions {
  /** Intra-op threads; the machine's cores when absent. */
  threads?: number;
}

/** onnxruntime-node itself, or an Error saying why it cannot load. */
export async function requireOrt(): Promise<Ort> {
  const r = await loadOrt();
  if ('error' in r) throw new Error(`onnxruntime-node cannot load: ${r.error}`);
  return r.ort;
}

/** A session tuned for one batch at a time (see the top of this file), of model bytes or a file. */
export async function tunedSession(model: Uint8Array | string, threads: number): Promise<import('onnxruntime-node').InferenceSession> {
  const ort = await requireOrt();
  const options = { graphOptimizationLevel: 'all', executionMode: 'sequential', intraOpNumThreads: threads, interOpNumThreads: 1 } as const;
  return typeof model === 'string' ? ort.InferenceSession.create(model, options) : ort.InferenceSession.create(model, options);
}

export async function createOnnxruntimeExtractor(model: EncoderModel, imageSize: number, opts: OnnxruntimeOptions = {}): Promise<FeatureExtractor> {
  const ort = await requireOrt();
  const threads = opts.threads ?? availableParallelism();
  const session = await tunedSession(encoderOnnx(model, { imageSize, normalization: model.normalization, layout: 'NHWC' }), threads);
  const featureDim = model.backbone.featureDim;
  return {
    runtime: 'onnxruntime',
    description: `onnxruntime ${ort.env.versions.common} CPU (graph optimisation all, ${threads} intra-op threads, NHWC input)`,
    featureDim,
    imageSize,
    async run(images: Float32Array, n: number): Promise<Float32Array> {
      const input = new ort.Tensor('float32', images, [n, imageSize, imageSize, 3]);
      const out = (await session.run({ [ONNX_INPUT]: input }))[ONNX_FEATURES]!;
      return out.data as Float32Array;
    },
    dispose(): void {
      void session.release();
    },
  };
}
