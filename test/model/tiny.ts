/** Tiny models and helpers shared by the checkpoint and weights tests (width 4, CIFAR stem: fast). */
import { ConfigSchema, ModelSchema, type Config } from '../../src/config/schema.js';
import { tf } from '../../src/engine/tf.js';
import { buildEncoder, buildSslModel, type EncoderModel, type SslModel } from '../../src/model/build.js';
import type { ParamStore } from '../../src/model/params.js';
import { Sgd } from '../../src/optim/sgd.js';

export function tinyConfig(model: Record<string, unknown> = {}, method: Record<string, unknown> = {}): Config {
  return ConfigSchema.parse({
    model: { arch: 'resnet18', stem: 'cifar', width: 4, ...model },
    method: { proj_dim: 16, proj_hidden: 16, proj_layers: 2, pred_hidden: 8, ...method },
  });
}

export function tinyModel(seed: number, config: Config = tinyConfig()): SslModel {
  return buildSslModel(config.model, config.method, seed);
}

export function tinySgd(store: ParamStore): Sgd {
  return new Sgd(store.trainable(), { momentum: 0.9, weightDecay: 1e-4, decayNormAndBias: true });
}

/** Two SGD steps with seeded random gradients, plus random running stats: nothing left at its init. */
export function perturb(store: ParamStore, sgd: Sgd, seed: number): void {
  for (let s = 0; s < 2; s++) {
    const grads: tf.NamedTensorMap = {};
    store.trainable().forEach((p, i) => {
      grads[p.variable.name] = tf.randomNormal(p.variable.shape, 0, 1, 'float32', seed * 1000 + s * 100 + i);
    });
    sgd.step(grads, () => 0.1);
    tf.dispose(Object.values(grads));
  }
  store
    .list()
    .filter((p) => !p.trainable)
    .forEach((p, i) => {
      const v = tf.tidy(() => tf.abs(tf.randomNormal(p.variable.shape, 0, 1, 'float32', seed + i)));
      p.variable.assign(v);
      v.dispose();
    });
}

export function snapshot(store: ParamStore): Map<string, Float32Array> {
  return new Map(store.list().map((p) => [p.name, p.variable.dataSync() as Float32Array]));
}

export function bufferSnapshot(sgd: Sgd): Map<string, Float32Array> {
  return new Map([...sgd.buffers].map(([k, v]) => [k, v.dataSync() as Float32Array]));
}

/** Reads a tfjs HWIO kernel value at PyTorch OIHW index (o, i, h, w). */
export function hwioAt(data: Float32Array, shape: readonly number[], o: number, i: number, h: number, w: number): number {
  const [, W, I, O] = shape as [number, number, number, number];
  return data[((h * W + w) * I + i) * O + o]!;
}

/**
 * An encoder whose weights and BatchNorm running statistics all moved away from their initialisation
 * (an SGD step on random targets), so folding or export bugs that a fresh model hides show.
 */
export function trainedLookingEncoder(model: Record<string, unknown>, bitDepths?: number[], seed = 7): EncoderModel {
  const enc = buildEncoder(ModelSchema.parse(model), 3, bitDepths ? { bitDepths } : {});
  const sgd = tinySgd(enc.store);
  perturb(enc.store, sgd, seed);
  sgd.dispose();
  return enc;
}
