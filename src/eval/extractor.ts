/**
 * A feature extractor: the frozen encoder in inference mode as one call per batch, whatever runs it
 * (the training graph on the active tfjs engine, a native oneDNN inference plan, ONNX Runtime). Eval,
 * the kNN monitor, embed and predict take features only through this, so a runtime is picked in one
 * place (src/eval/inference.ts) and checked against the training graph before it is trusted.
 */

/** The runtimes `engine.inference` can name; `auto` picks the fastest available (see inference.ts). */
export const INFERENCE_RUNTIMES = ['auto', 'onednn-plan', 'onnxruntime', 'tfjs'] as const;
export type InferenceRuntime = (typeof INFERENCE_RUNTIMES)[number];
export type ConcreteInferenceRuntime = Exclude<InferenceRuntime, 'auto'>;

export interface FeatureExtractor {
  readonly runtime: ConcreteInferenceRuntime;
  /** One line for logs and `doctor`: the runtime and what it does (threads, fused ops, batch). */
  readonly description: string;
  readonly featureDim: number;
  readonly imageSize: number;
  /**
   * Pooled features [n x featureDim], row-major, of `n` images given NHWC float32 [n, S, S, 3],
   * already normalised (as preprocessEval gives them). The input is not kept after the promise settles.
   */
  run(images: Float32Array, n: number): Promise<Float32Array>;
  /** Frees native memory; the extractor is unusable after. */
  dispose(): void;
}
