/**
 * The run configuration: one zod schema, the single source of truth for keys, types, defaults and
 * allowed values. Unknown keys are errors (strict objects) so a typo never silently does nothing.
 */
import { z } from 'zod';
import { ENGINE_NAMES, TF32_MODES, WINOGRAD_MODES } from '../engine/engine.js';
import { INFERENCE_RUNTIMES } from '../eval/extractor.js';

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
    /**
     * 'mixed16': fp16-autocast numerics emulated on float32 tensors (activations and weights rounded to
     * the float16 grid at layer boundaries, fp32 master weights, dynamic loss scaling).
     */
    precision: z.enum(['fp32', 'mixed16']).default('fp32'),
    /** mixed16: the first dynamic loss scale (GradScaler's init_scale); halved on overflow, x2 after 2000 clean steps. */
    loss_scale_init: z.number().positive().max(2 ** 127).default(2 ** 16),
    /**
     * cuda only: where float32 work may run on TF32 tensor cores (10-bit mantissa products, float32
     * sums). 'convs' is PyTorch's default (cudnn.allow_tf32 on, matmul off); 'off' gives exact float32.
     */
    tf32: z.enum(TF32_MODES).default('convs'),
    /**
     * onednn only: where 3x3 convs may run as Winograd F(4x4, 3x3) on AVX-512 CPUs. 'inference' (feature
     * extraction: within a few 1e-6 of the direct conv), 'all' (training too: a faster step, gradients
     * that can differ from the direct conv's by 1e-3 where training-mode batch norm amplifies rounding), 'off'.
     */
    winograd: z.enum(WINOGRAD_MODES).default('inference'),
    /**
     * How eval, embed and predict compute features: 'auto' (the training graph on GPU engines, the
     * fastest available CPU runtime otherwise), or one named (src/eval/inference.ts).
     */
    inference: z.enum(INFERENCE_RUNTIMES).default('auto'),
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

const fraction = z.number().min(0).max(1);

export const SplitSchema = z
  .object({
    /** Fractions of images per split, per dx class (HAM10000 moves whole lesions); they must add up to 1. */
    train: fraction.default(0.7),
    val: fraction.default(0.15),
    test: fraction.default(0.15),
  })
  .strict()
  .refine((s) => Math.abs(s.train + s.val + s.test - 1) < 1e-6, { message: 'train + val + test must add up to 1' })
  .default({});

export const PatchesSchema = z
  .object({
    /**
     * How a patch's slide and position are read from its file name (without folders). Placeholders
     * <slide>, <x>, <y> and <ext>; everything else is literal.
     */
    pattern: z.string().min(1).default('<slide>_<x>_<y>.<ext>'),
    /** 'pixels': x/y are pixel offsets (divided by stride); 'grid': x/y are grid indices. */
    units: z.enum(['pixels', 'grid']).default('pixels'),
    /** Pixels between neighbouring patches when units is 'pixels' (default: the patch width). */
    stride: posInt.optional(),
    /** 'names': coordinates in file names; 'simtriplet': the released layout (original/ + neighbour files <name>_<k>). 'auto': simtriplet when <root>/original exists. */
    layout: z.enum(['auto', 'names', 'simtriplet']).default('auto'),
  })
  .strict()
  .default({});

export const LabelledSchema = z
  .object({
    /** Labelled folder for probes: <root>/<group>/<class>/* or <root>/<class>/*. */
    root: z.string().min(1).optional(),
    layout: z.enum(['auto', 'grouped', 'flat']).default('auto'),
    /** The group (slide, patient) held out as the test set; default: the last group in name order. */
    holdout_group: z.string().min(1).optional(),
    /** Fraction of items used as test when the layout has no groups. */
    test_fraction: z.number().gt(0).lt(1).default(0.2),
  })
  .strict()
  .default({});

export const SlidesSchema = z
  .object({
    /** Unlabelled slides cut into patches for training, and labelled slides for evaluation. */
    train_slides: posInt.default(4),
    eval_slides: posInt.default(3),
    /** Patches per slide side (a slide is grid x grid patches, some left out as background). */
    grid: posInt.min(2).default(12),
    /** Native patch size in pixels. */
    patch_size: posInt.min(8).max(512).default(32),
    /** Tissue classes painted as regions on each slide. */
    classes: posInt.min(2).max(9).default(4),
    /** Fraction of grid cells dropped (background), so some patches lack neighbours. */
    gap_fraction: prob.default(0.1),
  })
  .strict()
  .default({});

export const DataSchema = z
  .object({
    kind: z.enum(['synthetic', 'cifar10', 'ham10000', 'patches', 'folder', 'synthetic_slides']).default('synthetic'),
    /**
     * Folder with the dataset files (cifar10: the cifar-10-batches-bin folder; ham10000: the folder with
     * HAM10000_metadata.csv and the images; patches: the patch folder; folder: the labelled folder).
     */
    root: z.string().min(1).optional(),
    /** HAM10000: a split written by an earlier run (<run>/split.json) to reuse instead of drawing one. */
    split_file: z.string().min(1).optional(),
    split: SplitSchema,
    /** What to do with a missing or undecodable image: fail with the list, or skip it and report. */
    on_bad_image: z.enum(['error', 'skip']).default('error'),
    /** Decoded, resized images are cached here as uint8 (keyed by file, size and mtime). */
    cache_dir: z.string().min(1).default('.simtrip-cache'),
    /**
     * Where the decoded images of a file-based load stay: 'memory' (one uint8 buffer), 'disk' (only the
     * decode cache entries; each image is read from data.cache_dir when used), 'auto' (disk when one load's
     * images exceed 2 GiB).
     */
    keep_images: z.enum(['auto', 'memory', 'disk']).default('auto'),
    /** Worker threads augmenting each batch (0: in the main thread); the views are bit-identical either way. */
    workers: nonNegInt.max(256).default(0),
    patches: PatchesSchema,
    /** Labelled data for probes and the kNN monitor when the training data is unlabelled (patches). */
    labelled: LabelledSchema,
    slides: SlidesSchema,
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

/** BatchNorm ResNets (torchvision names) or BiT ResNet-v2 (timm resnetv2_*_bit names). */
export const ARCH_NAMES = ['resnet18', 'resnet50', 'bit-r50x1', 'bit-r50x3', 'bit-r101x1', 'bit-r101x3', 'bit-r152x2', 'bit-r152x4'] as const;
export type ArchName = (typeof ARCH_NAMES)[number];
export type StemName = 'cifar' | 'imagenet';

/**
 * model.stem when the config leaves it out. BiT's weights were trained through its 7x7 root, so a
 * bit-* model with the CIFAR stem would leave that root behind and start from a random stem; the
 * ResNets keep the CIFAR recipe's 3x3 stem.
 */
export function defaultStem(arch: ArchName): StemName {
  return arch.startsWith('bit-') ? 'imagenet' : 'cifar';
}

export const ModelSchema = z
  .object({
    arch: z.enum(ARCH_NAMES).default('resnet18'),
    /**
     * 'cifar': 3x3 stem for 32 px inputs; 'imagenet': the arch's full stem (7x7/2 + max-pool; BiT's root
     * for bit-*). Left out: defaultStem(arch).
     */
    stem: z.enum(['cifar', 'imagenet']).optional(),
    /** BiT only: 'group' = GroupNorm as released; 'batch' = BatchNorm in its place (BiT-SimSiam), weight standardisation kept. */
    norm: z.enum(['group', 'batch']).default('group'),
    /** Base channel count (64 in the papers); every stage scales with it. Small values for tests. */
    width: posInt.max(512).default(64),
    /** Pretrained weights (.safetensors / .npz / PyTorch .pth, .pth.tar, .pt, .ckpt, .bin / simtrip checkpoint) loaded by parameter name. */
    weights: z.string().min(1).optional(),
    zero_init_residual: z.boolean().default(true),
  })
  .strict()
  .transform((m) => ({ ...m, stem: m.stem ?? defaultStem(m.arch) }))
  .default({});

export const MethodSchema = z
  .object({
    /** 'supervised' fine-tunes backbone + a zero-initialised linear head on the labels (the BiT arm). */
    name: z.enum(['simsiam', 'simtriplet', 'supervised']).default('simsiam'),
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
    /**
     * lr = base_lr x batch_size / lr_batch_ref: 256 in SimSiam's linear scaling rule, 512 in
     * BiT-HyperRule (lr 0.003 x batch/512 for method.name supervised).
     */
    lr_batch_ref: posInt.default(256),
    /** After the warm-up: 'cosine' decay to 0 (SimSiam) or 'steps', x0.1 at 30/60/90 % of all steps (BiT-HyperRule). */
    schedule: z.enum(['cosine', 'steps']).default('cosine'),
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
    /** Tensor dtype of checkpoint weights: f16 halves the file (momentum stays f32 so resume is exact in the optimiser). */
    save_dtype: z.enum(['f32', 'f16']).default('f32'),
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
    /**
     * base_lr values tried when the data has a validation split: the probe (lr and epoch) with the best
     * validation balanced accuracy is the one reported on test. Absent: base_lr x 0.1, 1 and 10.
     */
    lr_grid: z.array(z.number().positive()).min(1).optional(),
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
    /**
     * 'split': probe on train, report on test (model selection on val when the data has one, as the
     * HAM10000 protocol does); 'logo': leave-one-group-out folds over the labelled groups, then the fold
     * classifiers' ensemble on the held-out group (SimTriplet's protocol); 'auto': logo when the labelled
     * data has groups, else split.
     */
    protocol: z.enum(['auto', 'split', 'logo']).default('auto'),
  })
  .strict()
  .default({});

/** What a run writes beside metrics.jsonl and its report. */
export const LoggingSchema = z
  .object({
    /**
     * TensorBoard event files in <run>/tb/ (train: scalars, view grids, config and run.json; eval:
     * probe scores, confusion matrices, UMAP, neighbour grid and the embedding projector).
     */
    tensorboard: z.boolean().default(true),
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
    logging: LoggingSchema,
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
export type LoggingConfig = Config['logging'];
