import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';

const CONFIGS = fileURLToPath(new URL('../../configs/', import.meta.url));
const presets = readdirSync(CONFIGS).filter((f) => /\.(ya?ml|json)$/.test(f)).sort();

describe('presets in configs/', () => {
  it('exist', () => {
    expect(presets).toEqual(expect.arrayContaining(['cifar10-simsiam.yaml', 'demo.yaml', 'smoke-cifar10.yaml']));
  });

  it.each(presets)('%s validates, starts with a comment and is named after its file', async (file) => {
    const path = join(CONFIGS, file);
    const { config } = await loadConfig(path);
    expect(readFileSync(path, 'utf8').startsWith('#')).toBe(true);
    expect(config.name).toBe(file.replace(/\.(ya?ml|json)$/, ''));
  });

  it('demo is synthetic and small', async () => {
    const { config: c } = await loadConfig(join(CONFIGS, 'demo.yaml'));
    expect(c.data.kind).toBe('synthetic');
    expect(c.data.synthetic).toEqual({ train_size: 1000, test_size: 500, size: 32 });
    expect(c.model).toMatchObject({ arch: 'resnet18', stem: 'cifar', width: 16 });
    expect(c.method).toMatchObject({ proj_layers: 2, proj_dim: 256, pred_hidden: 64 });
    expect(c.train).toMatchObject({ epochs: 10, batch_size: 64, base_lr: 0.06, weight_decay: 5e-4, warmup_epochs: 1, checkpoint_every: 5, knn_every: 5 });
    expect(c.eval.linear.epochs).toBe(50);
  });

  it('cifar10-simsiam follows the SimSiam CIFAR recipe', async () => {
    const { config: c } = await loadConfig(join(CONFIGS, 'cifar10-simsiam.yaml'));
    expect(c.data).toMatchObject({ kind: 'cifar10', root: 'data/cifar-10-batches-bin', image_size: 32 });
    expect(c.model).toMatchObject({ arch: 'resnet18', stem: 'cifar', width: 64 });
    expect(c.method).toMatchObject({ proj_layers: 2, proj_dim: 2048, pred_hidden: 512 });
    expect(c.train).toMatchObject({
      epochs: 800,
      batch_size: 512,
      base_lr: 0.03,
      weight_decay: 5e-4,
      momentum: 0.9,
      warmup_epochs: 0,
      fix_pred_lr: true,
      checkpoint_every: 10,
      knn_every: 10,
    });
    expect(c.eval.linear).toMatchObject({ epochs: 100, batch_size: 256, normalize: true });
  });

  it('smoke-cifar10 shrinks cifar10-simsiam and inherits the rest', async () => {
    const { config: c, files } = await loadConfig(join(CONFIGS, 'smoke-cifar10.yaml'));
    expect(files).toEqual([join(CONFIGS, 'smoke-cifar10.yaml'), join(CONFIGS, 'cifar10-simsiam.yaml')]);
    const { config: full } = await loadConfig(join(CONFIGS, 'cifar10-simsiam.yaml'));
    expect(c.data).toMatchObject({ kind: 'cifar10', root: 'data/cifar-10-batches-bin', limit: 128, test_limit: 64 });
    expect(c.model.width).toBe(8);
    expect(c.method).toMatchObject({ proj_layers: 2, proj_dim: 64, pred_hidden: 16 });
    expect(c.train).toMatchObject({ ...full.train, epochs: 1, batch_size: 32, knn_every: 1 });
    expect(c.eval.linear).toEqual({ ...full.eval.linear, epochs: 5 });
  });
});
