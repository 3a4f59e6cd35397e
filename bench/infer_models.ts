/** The models bench:infer measures: the three, each with its input size and batch. */
import { ModelSchema, type ModelConfig } from '../src/config/schema.js';

export interface InferModel {
  readonly key: string;
  readonly label: string;
  readonly config: ModelConfig;
  readonly imageSize: number;
  /** Images per call: CIFAR's eval batch; smaller for 224 px so a 2-core run stays short. */
  readonly batch: number;
  /** PyTorch builds it from torchvision (bench/pytorch_infer.py); BiT it does not. */
  readonly torch: boolean;
}

export const INFER_MODELS: readonly InferModel[] = [
  { key: 'r18', label: 'ResNet-18 CIFAR stem w64, 32 px', config: ModelSchema.parse({ arch: 'resnet18', stem: 'cifar', width: 64 }), imageSize: 32, batch: 128, torch: true },
  { key: 'r50', label: 'ResNet-50 ImageNet stem, 224 px', config: ModelSchema.parse({ arch: 'resnet50', stem: 'imagenet', width: 64 }), imageSize: 224, batch: 16, torch: true },
  { key: 'bit', label: 'BiT-R50x1 (GroupNorm, WS), 128 px', config: ModelSchema.parse({ arch: 'bit-r50x1', stem: 'imagenet' }), imageSize: 128, batch: 32, torch: false },
];

export function inferModel(key: string): InferModel {
  const m = INFER_MODELS.find((x) => x.key === key);
  if (!m) throw new Error(`--model: got '${key}', expected one of ${INFER_MODELS.map((x) => x.key).join(', ')}`);
  return m;
}
