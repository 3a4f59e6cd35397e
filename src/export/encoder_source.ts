/**
 * The encoder `simtrip export` writes out: from a simtrip run or checkpoint (its own model settings,
 * input scaling and image size), or from any weight file simtrip reads (a released .pth, a timm or
 * torchvision file, a BiT .npz), built with the model settings `weights inspect` reads from the file.
 * Either way the whole backbone must come from the file: an encoder with random parts is refused.
 */
import { extname } from 'node:path';
import { ModelSchema, type ModelConfig } from '../config/schema.js';
import { requireWholeBackbone } from '../eval/frozen_weights.js';
import { readSafetensors } from '../io/safetensors.js';
import { BACKBONE_PREFIX, buildEncoder, type EncoderModel } from '../model/build.js';
import { inspectWeights, usageModelSettings } from '../model/inspect.js';
import { loadSafetensorsWeights, loadWeights, resolveWeightsPath } from '../model/weights.js';
import { checkpointStateOf } from '../train/checkpoint.js';
import { InputFileError } from '../util/errors.js';
import { listSome } from '../util/text.js';

export interface EncoderSource {
  readonly model: EncoderModel;
  readonly config: ModelConfig;
  /** Side of the square input the encoder is used at (data.image_size of its run, or a default). */
  readonly imageSize: number;
  /** "checkpoint runs/x/checkpoints/last.safetensors (epoch 12)", "weights resnet50.pth". */
  readonly description: string;
  readonly path: string;
}

/** The input size a weight file's model is used at when nothing says: 32 px for the CIFAR stem, else 224. */
export function defaultImageSize(model: ModelConfig): number {
  return model.stem === 'cifar' ? 32 : 224;
}

async function fromCheckpoint(path: string, imageSize: number | undefined): Promise<EncoderSource | null> {
  if (extname(path).toLowerCase() !== '.safetensors') return null;
  const file = await readSafetensors(path);
  const state = checkpointStateOf(file);
  if (!state) return null;
  const config = state.config.model;
  const model = buildEncoder(config, state.config.seed);
  model.normalization = state.normalization;
  const report = loadSafetensorsWeights(model.store, file);
  const fresh = report.missing.filter((n) => n.startsWith(BACKBONE_PREFIX));
  if (fresh.length > 0) {
    model.store.dispose();
    throw new InputFileError(path, `checkpoint lacks ${fresh.length} backbone tensor(s): ${listSome(fresh, 4)}`);
  }
  return { model, config, imageSize: imageSize ?? state.config.data.image_size, description: `checkpoint ${path} (epoch ${state.epoch})`, path };
}

async function fromWeights(path: string, imageSize: number | undefined): Promise<EncoderSource> {
  const summary = await inspectWeights(path);
  const settings = usageModelSettings(summary.usage);
  if (!settings.arch) throw new InputFileError(path, `no simtrip model matches this file (${summary.note ?? summary.architecture})`);
  const config = ModelSchema.parse({ ...settings, ...(settings.width ? { width: Number(settings.width) } : {}) });
  const model = buildEncoder(config, 0);
  try {
    const report = await loadWeights(model.store, path, { arch: config.arch });
    await requireWholeBackbone(report, config);
  } catch (err) {
    model.store.dispose();
    throw err;
  }
  return { model, config, imageSize: imageSize ?? defaultImageSize(config), description: `weights ${path} (${summary.layout ?? summary.architecture})`, path };
}

/** Opens RUN_OR_FILE: a simtrip run, checkpoint, or any weight file. The caller disposes model.store. */
export async function openEncoderSource(path: string, imageSize?: number): Promise<EncoderSource> {
  const resolved = resolveWeightsPath(path);
  return (await fromCheckpoint(resolved, imageSize)) ?? fromWeights(resolved, imageSize);
}
