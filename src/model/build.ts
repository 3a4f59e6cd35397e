/**
 * Builds the networks a config describes. The backbone's parameters live under "backbone." so that a
 * whole SSL model (backbone + projector + predictor) is one state dict, as in the official SimSiam.
 */
import type { MethodConfig, ModelConfig } from '../config/schema.js';
import type { Normalization } from '../data/augment.js';
import { SimSiam, type SslMethod } from '../method/simsiam.js';
import { Rng } from '../util/rng.js';
import type { Context } from './layers.js';
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

export function buildBackbone(ctx: Context, model: ModelConfig, numClasses?: number): Backbone {
  if (isBitArch(model.arch)) {
    const stem = model.stem === 'cifar' ? 'cifar' : 'bit';
    return new BitResNet(ctx, { ...bitSpecOf(model.arch), stem, numClasses }, BACKBONE_PREFIX);
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
  method: SslMethod;
}

/** The backbone alone (embedding, probing): seeded init, weights loaded by the caller. */
export function buildEncoder(model: ModelConfig, seed: number): EncoderModel {
  const store = new ParamStore();
  const backbone = buildBackbone({ store, rng: new Rng(seed, 'init') }, model);
  return { store, backbone, normalization: normalizationFor(model) };
}

/** Backbone + SSL heads for training. Init draws from one seeded stream, so a seed fixes the model. */
export function buildSslModel(model: ModelConfig, method: MethodConfig, seed: number): SslModel {
  const store = new ParamStore();
  const ctx: Context = { store, rng: new Rng(seed, 'init') };
  const backbone = buildBackbone(ctx, model);
  const heads = new SimSiam(ctx, backbone, {
    projDim: method.proj_dim,
    projHidden: method.proj_hidden ?? method.proj_dim,
    projLayers: method.proj_layers,
    predHidden: method.pred_hidden,
  });
  return { store, backbone, method: heads, normalization: normalizationFor(model) };
}
