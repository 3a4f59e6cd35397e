import { describe, expect, it } from 'vitest';
import { ConfigSchema } from '../../src/config/schema.js';
import { buildSslModel } from '../../src/model/build.js';
import { METHOD_VIEWS } from '../../src/method/views.js';
import { useCpuBackend } from '../helpers.js';

describe('METHOD_VIEWS', () => {
  it('is what the built methods train with: their view sources and augmentation', async () => {
    await useCpuBackend();
    for (const name of ['simsiam', 'simtriplet', 'supervised'] as const) {
      const cfg = ConfigSchema.parse({ name: 't', model: { arch: 'resnet18', stem: 'cifar', width: 4 }, method: { name, proj_dim: 8, pred_hidden: 4 } });
      const m = buildSslModel(cfg.model, cfg.method, 1, { numClasses: 3 });
      expect(m.method.viewSources).toEqual(METHOD_VIEWS[name].viewSources);
      const augment = m.method.augment?.(cfg.data.augment) ?? cfg.data.augment;
      expect(augment).toEqual(METHOD_VIEWS[name].augment(cfg.data.augment));
      m.store.dispose();
    }
    expect(METHOD_VIEWS.simtriplet.viewSources).toEqual(['item', 'neighbour', 'item']);
    const geometric = METHOD_VIEWS.supervised.augment(ConfigSchema.parse({ name: 't' }).data.augment);
    expect([geometric.jitter_prob, geometric.grayscale_prob, geometric.blur_prob]).toEqual([0, 0, 0]);
  });
});
