/**
 * Builds the networks a config describes. The backbone's parameters live under "backbone." so that a
 * whole SSL model (backbone + projector + predictor) is one state dict, as in the official SimSiam.
 */
import { ARCH_NAMES, type MethodConfig, type ModelConfig } from '../config/schema.js';
import type { Normalization } from '../data/augment.js';
import type { TrainMethod } from '../method/method.js';
import { SimSiam, type SimSiamSpec } from '../method/simsiam.js';
import { SimTriplet } from '../method/simtriplet.js';
import { Supervised } from '../method/supervised.js';
import { Rng } from '../util/rng.js';
import type { Context, Precision } from './layers.js';
import { ParamStore } from './params.js';
import { BIT_DEPTHS, BitResNet } from './bit.js';
import { RESNET_SPECS, ResNet, type Backbone } from './resnet.js';

export const BACKBONE_PREFIX = 'backbone.';

/** Input scaling the weights expect: ImageNet mean/std for BatchNorm ResNets, [-1, 1] for BiT. */
export function normalizationFor(model: ModelConfig): Normalization {
  return isBitArch(model.arch) ? 'bit' : 'imagenet';
}

export function isBitArch(arch: ModelConfig['arch']): arch is Extract<ModelConfig['arch'], `bit-${string}`> {
  return arch.startsWith('bit-');
}

/** "bit-r50x3" -> depths of R50, width factor 3. */
export function bitSpecOf(arch: string): { depths: number[]; widthFactor: number } {
  const m = /^bit-(r50|r101|r152)x(\d+)$/.exec(arch);
  if (!m) throw new Error(`not a BiT architecture: ${arch}`);
  return { depths: [...BIT_DEPTHS[m[1] as keyof typeof BIT_DEPTHS]], widthFactor: Number(m[2]) };
}

/** The model.arch value of a BiT layout (depths, width factor), or undefined when the schema has none. */
export function bitArchOf(depths: readonly number[], widthFactor: number): ModelConfig['arch'] | undefined {
  return ARCH_NAMES.find((a) => {
    if (!isBitArch(a)) return false;
    const spec = bitSpecOf(a);
    return spec.widthFactor === widthFactor && spec.depths.join() === depths.join();
  });
}

/**
 * Code-only changes to what the config describes, for tests that load small reference models (the
 * golden BiT fixture has one unit per stage). Deliberately not a config key: users pick an arch.
 */
export interface BuildOverrides {
  /** BiT units per stage instead of the arch's. */
  bitDepths?: number[];
}

export function buildBackbone(ctx: Context, model: ModelConfig, numClasses?: number, overrides: BuildOverrides = {}): Backbone {
  if (isBitArch(model.arch)) {
    const spec = bitSpecOf(model.arch);
    return new BitResNet(
      ctx,
      {
        depths: overrides.bitDepths ?? spec.depths,
        widthFactor: spec.widthFactor,
        stem: model.stem === 'cifar' ? 'cifar' : 'bit',
        // model.width is the root width before the width factor: BiT's 64 by default.
        width: model.width,
        norm: model.norm,
        zeroInitLastNorm: model.zero_init_residual,
        numClasses,
      },
      BACKBONE_PREFIX,
    );
  }
  const spec = RESNET_SPECS[model.arch];
  return new ResNet(
    ctx,
    { ...spec, layers: [...spec.layers], stem: model.stem, width: model.width, zeroInitResidual: model.zero_init_residual, numClasses },
    BACKBONE_PREFIX,
  );
}

export interface EncoderModel {
  store: ParamStore;
  backbone: Backbone;
  normalization: Normalization;
}

export interface SslModel extends EncoderModel {
  method: TrainMethod;
}

/** The backbone alone (embedding, probing): seeded init, weights loaded by the caller. */
export function buildEncoder(model: ModelConfig, seed: number, overrides: BuildOverrides = {}): EncoderModel {
  const store = new ParamStore();
  const backbone = buildBackbone({ store, rng: new Rng(seed, 'init') }, model, undefined, overrides);
  return { store, backbone, normalization: normalizationFor(model) };
}

export interface TrainModelOptions {
  /** Classes of the labelled train split: required by method.name 'supervised'. */
  numClasses?: number;
  /** engine.precision: 'mixed16' makes every layer round to the float16 grid as autocast would. */
  precision?: Precision;
}

/**
 * Backbone + the method's heads for training (SimSiam / SimTriplet projector and predictor, or the
 * supervised linear head). Init draws from one seeded stream, so a seed fixes the model.
 */
export function buildSslModel(model: ModelConfig, method: MethodConfig, seed: number, opts: TrainModelOptions = {}): SslModel {
  const store = new ParamStore();
  const ctx: Context = { store, rng: new Rng(seed, 'init'), precision: opts.precision };
  const backbone = buildBackbone(ctx, model);
  const spec: SimSiamSpec = {
    projDim: method.proj_dim,
    projHidden: method.proj_hidden ?? method.proj_dim,
    projLayers: method.proj_layers,
    predHidden: method.pred_hidden,
  };
  let heads: TrainMethod;
  switch (method.name) {
    case 'simsiam':
      heads = new SimSiam(ctx, backbone, spec);
      break;
    case 'simtriplet':
      heads = new SimTriplet(ctx, backbone, spec);
      break;
    case 'supervised':
      if (opts.numClasses === undefined) throw new Error("method.name 'supervised' needs the number of classes");
      heads = new Supervised(ctx, backbone, opts.numClasses);
      break;
  }
  return { store, backbone, method: heads, normalization: normalizationFor(model) };
}
