/**
 * The oneDNN engine's inference plan: the encoder's inference graph (emitFeatures) compiled once into
 * native oneDNN primitives, run as a FeatureExtractor. Being written on its own branch this session;
 * until it lands, it reports itself unavailable and `auto` never picks it.
 */
import type { FeatureExtractor } from '../../eval/extractor.js';
import type { EncoderModel } from '../../model/build.js';

export interface PlanOptions {
  /** Images per native call; the plan picks one sized for the cache when absent. */
  batchSize?: number;
}

/** Whether the loaded oneDNN addon can build inference plans. */
export function onednnPlanAvailable(): boolean {
  return false;
}

export function createOnednnPlanExtractor(_model: EncoderModel, _imageSize: number, _opts: PlanOptions = {}): FeatureExtractor {
  throw new Error('the onednn-plan inference runtime is not built into this version');
}
