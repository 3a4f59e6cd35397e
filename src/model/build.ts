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
import { RESNET_SPECS, ResNet, type Backbone } from './resnet.js';

export const BACKBONE_PREFIX = 'backbone.';

/** Input scaling the weights expect: ImageNet mean/std for BatchNorm ResNets, [-1, 1] for BiT. */
export function normalizationFor(_model: ModelConfig): Normalization {
  return 'imagenet';
}

export function buildBackbone(ctx: Context, model: ModelConfig, numClasses?: number): Backbone {
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
