/**
 * The run configuration: one zod schema, the single source of truth for keys, types, defaults and
 * allowed values. Unknown keys are errors (strict objects) so a typo never silently does nothing.
 */
import { z } from 'zod';
import { ENGINE_NAMES } from '../engine/engine.js';

const posInt = z.number().int().positive();
const nonNegInt = z.number().int().nonnegative();
const prob = z.number().min(0).max(1);
const range = (lo: number, hi: number) =>
  z
    .tuple([z.number().min(lo).max(hi), z.number().min(lo).max(hi)])
    .refine(([a, b]) => a <= b, { message: 'expected [low, high] with low <= high' });

export const EngineSchema = z
  .object({
    backend: z.enum(ENGINE_NAMES).default('auto'),
  })
  .strict()
  .default({});

export const AugmentSchema = z
  .object({
    crop_scale: range(0.01, 1).default([0.2, 1.0]),
    crop_ratio: range(0.1, 10).default([3 / 4, 4 / 3]),
    jitter_prob: prob.default(0.8),
    brightness: z.number().min(0).default(0.4),
    contrast: z.number().min(0).default(0.4),
    saturation: z.number().min(0).default(0.4),
    hue: z.number().min(0).max(0.5).default(0.1),
    grayscale_prob: prob.default(0.2),
    /** 'auto' = 0.5 at >= 64 px, off below (SimSiam CIFAR recipe has no blur at 32 px). */
    blur_prob: z.union([prob, z.literal('auto')]).default('auto'),
    blur_sigma: range(0.01, 10).default([0.1, 2.0]),
    flip_prob: prob.default(0.5),
  })
  .strict()
  .default({});

export const SyntheticSchema = z
  .object({
    train_size: posInt.default(2000),
    test_size: posInt.default(500),
    /** Native resolution of the generated images (resized to data.image_size if different). */
    size: posInt.min(8).max(512).default(32),
  })
  .strict()
  .default({});

export const DataSchema = z
  .object({
    kind: z.enum(['synthetic', 'cifar10']).default('synthetic'),
    /** Folder with the dataset files (cifar10: the cifar-10-batches-bin folder). */
    root: z.string().min(1).optional(),
    image_size: posInt.min(8).max(1024).default(32),
    /** Use only the first N training items (and N test items): smoke runs. */
    limit: posInt.optional(),
    /** Use only the first N test items (defaults to limit). */
    test_limit: posInt.optional(),
    synthetic: SyntheticSchema,
    augment: AugmentSchema,
  })
  .strict()
  .default({});

export const ModelSchema = z
  .object({
    arch: z.enum(['resnet18', 'resnet50']).default('resnet18'),
    stem: z.enum(['cifar', 'imagenet']).default('cifar'),
    /** Base channel count (64 in the papers); every stage scales with it. Small values for tests. */
    width: posInt.max(512).default(64),
    /** Pretrained weights (.safetensors / .npz / simtrip checkpoint) loaded by parameter name. */
    weights: z.string().min(1).optional(),
    zero_init_residual: z.boolean().default(true),
  })
  .strict()
  .default({});

export const MethodSchema = z
  .object({
    name: z.enum(['simsiam']).default('simsiam'),
    proj_dim: posInt.default(2048),
    proj_hidden: posInt.optional(),
    proj_layers: z.union([z.literal(2), z.literal(3)]).default(3),
    pred_hidden: posInt.default(512),
  })
  .strict()
  .default({});

export const TrainSchema = z
  .object({
    epochs: posInt.default(100),
    batch_size: posInt.min(2).default(512),
    base_lr: z.number().positive().default(0.03),
    weight_decay: z.number().min(0).default(5e-4),
    momentum: z.number().min(0).max(0.999).default(0.9),
    warmup_epochs: z.number().min(0).default(0),
    fix_pred_lr: z.boolean().default(true),
    /** Apply weight decay to BatchNorm parameters and biases too (the official SimSiam code does). */
    wd_on_norm_and_bias: z.boolean().default(true),
    checkpoint_every: posInt.default(10),
    keep_last: posInt.default(3),
    /** kNN monitor every N epochs (0 = off). */
    knn_every: nonNegInt.default(10),
    /** kNN monitor uses at most this many train (memory bank) and test items. */
    knn_limit: posInt.default(10000),
    log_every: posInt.default(10),
  })
  .strict()
  .default({});

export const LinearEvalSchema = z
  .object({
    epochs: posInt.default(100),
    batch_size: posInt.default(256),
    /** SGD lr before the batch/256 scaling (the SimSiam CIFAR probe uses ~30 on raw features). */
    base_lr: z.number().positive().default(0.1),
    momentum: z.number().min(0).max(0.999).default(0.9),
    weight_decay: z.number().min(0).default(0),
    /** Standardise features with the train mean/std first (a BN without affine before the linear layer). */
    normalize: z.boolean().default(true),
    /** Fraction of labelled train items used, class-stratified and seeded. */
    label_fraction: z.number().gt(0).max(1).default(1),
  })
  .strict()
  .default({});

export const EvalSchema = z
  .object({
    linear: LinearEvalSchema,
    knn: z
      .object({
        k: posInt.default(200),
        t: z.number().positive().default(0.1),
      })
      .strict()
      .default({}),
    batch_size: posInt.default(256),
  })
  .strict()
  .default({});

export const ConfigSchema = z
  .object({
    name: z
      .string()
      .regex(/^[A-Za-z0-9._-]+$/, 'expected letters, digits, ".", "_" or "-"')
      .default('run'),
    seed: nonNegInt.default(0),
    engine: EngineSchema,
    data: DataSchema,
    model: ModelSchema,
    method: MethodSchema,
    train: TrainSchema,
    eval: EvalSchema,
  })
  .strict();

export type Config = z.infer<typeof ConfigSchema>;
export type DataConfig = Config['data'];
export type AugmentConfig = DataConfig['augment'];
export type ModelConfig = Config['model'];
export type MethodConfig = Config['method'];
export type TrainConfig = Config['train'];
export type EvalConfig = Config['eval'];
export type LinearEvalConfig = EvalConfig['linear'];
