/**
 * The BiT presets: the recipe the issue names, and the path they take with a BiT file (here a narrow
 * R50 .npz generated in the official layout; the preset's own file is a download).
 */
import { useCpuBackend } from '../helpers.js';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { buildEncoder, normalizationFor } from '../../src/model/build.js';
import { loadWeights } from '../../src/model/weights.js';
import { tempDir } from '../io/tmp.js';
import { bitNpzArrays, npzBytes, randomValues } from './bit_files.js';

beforeAll(useCpuBackend);

const preset = (name: string) => fileURLToPath(new URL(`../../configs/${name}`, import.meta.url));

describe('BiT presets', () => {
  it.each([
    ['cifar10-bit-simsiam.yaml', 'batch'],
    ['cifar10-bit-gn-simsiam.yaml', 'group'],
  ] as const)('%s: BiT-S-R50x1, CIFAR stem, norm %s, the SimSiam CIFAR recipe', async (file, norm) => {
    const { config: c } = await loadConfig(preset(file));
    expect(c.model).toEqual({ arch: 'bit-r50x1', stem: 'cifar', norm, width: 64, weights: 'weights/BiT-S-R50x1.npz', zero_init_residual: true });
    expect(c.data).toMatchObject({ kind: 'cifar10', image_size: 32 });
    expect(c.method).toMatchObject({ name: 'simsiam', proj_layers: 2, proj_dim: 2048, pred_hidden: 512 });
    expect(c.train).toMatchObject({ batch_size: 512, base_lr: 0.03, weight_decay: 5e-4, momentum: 0.9, warmup_epochs: 10 });
    expect(normalizationFor(c.model)).toBe('bit');
  });

  it.each([
    // GroupNorm: gamma and beta of 3 norms per unit and of the pre-head norm also transfer.
    ['cifar10-bit-simsiam.yaml', 0],
    ['cifar10-bit-gn-simsiam.yaml', 2 * (3 * 16 + 1)],
  ])('%s loads a BiT file: the conv kernels (and GroupNorms) but the CIFAR stem', async (file, normParams) => {
    const arrays = bitNpzArrays({ depths: [3, 4, 6, 3], width: 4, numClasses: 3 });
    const npz = join(tempDir(), 'BiT-S-R50x1.npz');
    writeFileSync(npz, npzBytes(arrays, randomValues(arrays, 1)));
    const { config: c } = await loadConfig(preset(file), ['model.width=4', `model.weights=${npz}`]);
    const enc = buildEncoder(c.model, c.seed);
    const report = await loadWeights(enc.store, c.model.weights!, { arch: c.model.arch });
    // R50: 16 units x 3 convs + 4 projections = 52 kernels; the stem stays new.
    expect(report.loaded.filter((n) => /conv\d?\.weight$/.test(n))).toHaveLength(52);
    expect(report.loaded.length - 52).toBe(normParams);
    expect(report.missing).toContain('backbone.stem.conv.weight');
    enc.store.dispose();
  });
});
