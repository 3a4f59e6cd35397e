import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { tf } from '../../src/engine/tf.js';
import { readSafetensors, writeSafetensors } from '../../src/io/safetensors.js';
import {
  MOMENTUM_PREFIX,
  pruneCheckpoints,
  readCheckpoint,
  resolveCheckpointPath,
  restoreCheckpoint,
  saveCheckpoint,
  type CheckpointStateInput,
} from '../../src/train/checkpoint.js';
import type { Config } from '../../src/config/schema.js';
import { roundToFloat16 } from '../../src/io/float16.js';
import { loadWeights } from '../../src/model/weights.js';
import type { ParamStore } from '../../src/model/params.js';
import type { Sgd } from '../../src/optim/sgd.js';
import { useCpuBackend } from '../helpers.js';
import { expectInputFileError, fixture, tempDir } from '../io/tmp.js';
import { bufferSnapshot, hwioAt, perturb, snapshot, tinyConfig, tinyModel, tinySgd } from '../model/tiny.js';

beforeAll(useCpuBackend);

function stateFor(config: Config, epoch: number, step = epoch * 10): CheckpointStateInput {
  return { epoch, step, config, normalization: 'imagenet', engine: 'cpu', metrics: { loss: -0.5 } };
}

async function savedRun(config = tinyConfig(), withOptimizer = true) {
  const runDir = tempDir();
  const model = tinyModel(1, config);
  const sgd = tinySgd(model.store);
  perturb(model.store, sgd, 7);
  const path = await saveCheckpoint(runDir, {
    store: model.store,
    optimizer: withOptimizer ? sgd : undefined,
    state: stateFor(config, 3),
    keep: true,
  });
  return { runDir, path, model, sgd, config };
}

function expectSameValues(a: Map<string, Float32Array>, b: Map<string, Float32Array>): void {
  expect([...b.keys()].sort()).toEqual([...a.keys()].sort());
  for (const [name, values] of a) expect(b.get(name), name).toEqual(values);
}

function dispose(...things: Array<{ store: ParamStore } | Sgd>): void {
  for (const t of things) ('store' in t ? t.store : t).dispose();
}

describe('saveCheckpoint / restoreCheckpoint', () => {
  it('round-trips params, running stats and momentum exactly, without leaking tensors', async () => {
    const config = tinyConfig();
    const runDir = tempDir();
    const a = tinyModel(1, config);
    const sgdA = tinySgd(a.store);
    perturb(a.store, sgdA, 3);
    expect(sgdA.buffers.size).toBe(a.store.trainable().length);

    const before = tf.memory().numTensors;
    const path = await saveCheckpoint(runDir, { store: a.store, optimizer: sgdA, state: stateFor(config, 2) });
    expect(tf.memory().numTensors).toBe(before);
    expect(path).toBe(join(runDir, 'checkpoints', 'last.safetensors'));

    const b = tinyModel(2, config);
    const sgdB = tinySgd(b.store);
    const ckpt = await readCheckpoint(path);
    expect(ckpt.state.epoch).toBe(2);
    expect(ckpt.state.step).toBe(20);
    expect(ckpt.state.config).toEqual(config);
    expect(ckpt.state.normalization).toBe('imagenet');
    expect(ckpt.state.engine).toBe('cpu');
    expect(ckpt.state.metrics).toEqual({ loss: -0.5 });
    expect(ckpt.state.arch).toMatchObject({ arch: 'resnet18', stem: 'cifar', width: 4, params: a.store.count() });
    expect(Number.isNaN(Date.parse(ckpt.state.created))).toBe(false);

    const beforeRestore = tf.memory().numTensors;
    const report = restoreCheckpoint(ckpt, b.store, sgdB);
    // The only new tensors are the momentum buffers the optimizer now holds.
    expect(tf.memory().numTensors).toBe(beforeRestore + sgdA.buffers.size);
    expect(report).toEqual({ unexpected: [], momentum: sgdA.buffers.size });
    expectSameValues(snapshot(a.store), snapshot(b.store));
    expectSameValues(bufferSnapshot(sgdA), bufferSnapshot(sgdB));

    // Restoring again replaces the buffers instead of adding more.
    const again = tf.memory().numTensors;
    restoreCheckpoint(ckpt, b.store, sgdB);
    expect(tf.memory().numTensors).toBe(again);
    dispose(a, b, sgdA, sgdB);
  });

  it('stores PyTorch layouts as F32 with safetensors.torch-style metadata', async () => {
    const { path, model, sgd } = await savedRun();
    const file = await readSafetensors(path);
    expect(file.metadata.format).toBe('pt');
    const conv = model.store.get('backbone.conv1.weight').variable;
    expect(conv.shape).toEqual([3, 3, 3, 4]); // HWIO in tfjs
    expect(file.info('backbone.conv1.weight')).toEqual({ dtype: 'F32', shape: [4, 3, 3, 3] }); // OIHW
    const disk = file.getFloat32('backbone.conv1.weight');
    const mem = conv.dataSync() as Float32Array;
    // OIHW index (o=3, i=1, h=2, w=0)
    expect(disk[((3 * 3 + 1) * 3 + 2) * 3 + 0]).toBe(hwioAt(mem, conv.shape, 3, 1, 2, 0));
    expect(file.info('projector.0.weight').shape).toEqual([16, 8 * 4]); // [out, in]
    expect(file.info('backbone.bn1.running_var')).toEqual({ dtype: 'F32', shape: [4] });
    expect(file.info(`${MOMENTUM_PREFIX}backbone.conv1.weight`).shape).toEqual([4, 3, 3, 3]);
    expect(file.names().filter((n) => n.startsWith(MOMENTUM_PREFIX))).toHaveLength(sgd.buffers.size);
    expect(file.names()).toHaveLength(model.store.list().length + sgd.buffers.size);
    dispose(model, sgd);
  });

  it('writes no momentum before the first step and restores into an optimizer without buffers', async () => {
    const config = tinyConfig();
    const runDir = tempDir();
    const a = tinyModel(1, config);
    const sgdA = tinySgd(a.store);
    await saveCheckpoint(runDir, { store: a.store, optimizer: sgdA, state: stateFor(config, 0) });
    const b = tinyModel(2, config);
    const sgdB = tinySgd(b.store);
    const ckpt = await readCheckpoint(runDir);
    expect(ckpt.file.names().some((n) => n.startsWith('optimizer.'))).toBe(false);
    expect(restoreCheckpoint(ckpt, b.store, sgdB).momentum).toBe(0);
    expect(sgdB.buffers.size).toBe(0);
    expectSameValues(snapshot(a.store), snapshot(b.store));
    dispose(a, b, sgdA, sgdB);
  });

  it('ignores momentum in the file when restoring without an optimizer', async () => {
    const { path, model, sgd, config } = await savedRun();
    const b = tinyModel(5, config);
    const report = restoreCheckpoint(await readCheckpoint(path), b.store);
    expect(report).toEqual({ unexpected: [], momentum: 0 });
    expectSameValues(snapshot(model.store), snapshot(b.store));
    dispose(model, sgd, b);
  });

  it('keeps the newest K epoch files, and last is always the newest checkpoint', async () => {
    const config = tinyConfig();
    const runDir = tempDir();
    const m = tinyModel(1, config);
    for (let epoch = 1; epoch <= 5; epoch++) {
      await saveCheckpoint(runDir, { store: m.store, state: stateFor(config, epoch), keep: true, keepLast: 2 });
      expect((await readCheckpoint(runDir)).state.epoch).toBe(epoch);
    }
    const dir = join(runDir, 'checkpoints');
    const listing = () => readdirSync(dir).sort();
    expect(listing()).toEqual(['epoch-0004.safetensors', 'epoch-0005.safetensors', 'last.safetensors']);

    // A non-kept save only moves `last`.
    await saveCheckpoint(runDir, { store: m.store, state: stateFor(config, 6), keep: false });
    expect(listing()).toEqual(['epoch-0004.safetensors', 'epoch-0005.safetensors', 'last.safetensors']);
    expect((await readCheckpoint(join(dir, 'last'))).state.epoch).toBe(6);
    expect((await readCheckpoint(join(dir, 'epoch-0005'))).state.epoch).toBe(5);

    // Epochs past 9999 still sort numerically, and pruning never removes `last`.
    await saveCheckpoint(runDir, { store: m.store, state: stateFor(config, 12345), keep: true });
    expect(existsSync(join(dir, 'epoch-12345.safetensors'))).toBe(true);
    expect(await pruneCheckpoints(runDir, 1)).toEqual([
      join(dir, 'epoch-0004.safetensors'),
      join(dir, 'epoch-0005.safetensors'),
    ]);
    expect(listing()).toEqual(['epoch-12345.safetensors', 'last.safetensors']);
    expect(await pruneCheckpoints(runDir, 0)).toHaveLength(1);
    expect(listing()).toEqual(['last.safetensors']);
    // No temp files left behind by the atomic writes.
    expect(readdirSync(dir).filter((n) => n.endsWith('.tmp'))).toEqual([]);
    dispose(m);
  });

  it('does not touch files that only look like checkpoints', async () => {
    const runDir = tempDir();
    mkdirSync(join(runDir, 'checkpoints'));
    for (const n of ['epoch-1.safetensors', 'epoch-2.safetensors', 'epoch-0003.safetensors.bak', 'notes.txt']) {
      writeFileSync(join(runDir, 'checkpoints', n), 'x');
    }
    expect(await pruneCheckpoints(runDir, 1)).toEqual([join(runDir, 'checkpoints', 'epoch-1.safetensors')]);
    expect(await pruneCheckpoints(tempDir(), 3)).toEqual([]);
  });
});

describe('train.save_dtype f16', () => {
  const withSaveDtype = (config: Config, save_dtype: 'f32' | 'f16'): Config => ({ ...config, train: { ...config.train, save_dtype } });

  it('writes trainable weights as F16 (about half the file), running stats and momentum as F32', async () => {
    const config = tinyConfig();
    const a = tinyModel(1, config);
    const sgdA = tinySgd(a.store);
    perturb(a.store, sgdA, 11);
    const save = async (dtype: 'f32' | 'f16', optimizer?: Sgd) =>
      saveCheckpoint(tempDir(), { store: a.store, optimizer, state: stateFor(withSaveDtype(config, dtype), 1) });
    const path32 = await save('f32');
    const path16 = await save('f16');
    const ratio = statSync(path16).size / statSync(path32).size;
    expect(ratio).toBeGreaterThan(0.45);
    expect(ratio).toBeLessThan(0.56);

    const file = await readSafetensors(await save('f16', sgdA));
    expect(file.info('backbone.conv1.weight').dtype).toBe('F16');
    expect(file.info('backbone.bn1.weight').dtype).toBe('F16');
    expect(file.info('backbone.bn1.running_var').dtype).toBe('F32');
    expect(file.info('backbone.bn1.running_mean').dtype).toBe('F32');
    expect(file.info(`${MOMENTUM_PREFIX}backbone.conv1.weight`).dtype).toBe('F32');
    dispose(a, sgdA);
  });

  it('restores the weights rounded to half and the optimiser state exactly; loadWeights reads it too', async () => {
    const config = withSaveDtype(tinyConfig(), 'f16');
    const runDir = tempDir();
    const a = tinyModel(1, config);
    const sgdA = tinySgd(a.store);
    perturb(a.store, sgdA, 12);
    // A weight beyond the half range would become Inf as F16: that tensor is kept F32 instead.
    const big = a.store.get('projector.0.weight').variable;
    tf.tidy(() => big.assign(tf.mul(big, 1e6)));
    await saveCheckpoint(runDir, { store: a.store, optimizer: sgdA, state: stateFor(config, 4) });

    const b = tinyModel(2, config);
    const sgdB = tinySgd(b.store);
    const ckpt = await readCheckpoint(runDir);
    expect(ckpt.file.info('projector.0.weight').dtype).toBe('F32');
    restoreCheckpoint(ckpt, b.store, sgdB);
    const after = snapshot(b.store);
    let changed = 0;
    for (const p of a.store.list()) {
      const original = p.variable.dataSync() as Float32Array;
      const halfStored = p.trainable && p.name !== 'projector.0.weight';
      const expected = halfStored ? Float32Array.from(original, (v) => roundToFloat16(v)) : original;
      expect(after.get(p.name), p.name).toEqual(expected);
      if (halfStored && expected.some((v, i) => v !== original[i])) changed++;
    }
    expect(changed).toBeGreaterThan(0);
    expectSameValues(bufferSnapshot(sgdA), bufferSnapshot(sgdB));

    const c = tinyModel(3, config);
    await loadWeights(c.store, runDir);
    expectSameValues(after, snapshot(c.store));
    dispose(a, b, c, sgdA, sgdB);
  });

  it('keeps the loss scaler state of a mixed16 run', async () => {
    const config = tinyConfig();
    const runDir = tempDir();
    const m = tinyModel(1, config);
    const loss_scaling = { scaler: { scale: 2 ** 13, goodSteps: 17 }, skipped_steps: 3 };
    await saveCheckpoint(runDir, { store: m.store, state: { ...stateFor(config, 2), loss_scaling } });
    expect((await readCheckpoint(runDir)).state.loss_scaling).toEqual(loss_scaling);
    await saveCheckpoint(runDir, { store: m.store, state: stateFor(config, 3) });
    expect((await readCheckpoint(runDir)).state.loss_scaling).toBeUndefined();
    dispose(m);
  });
});

describe('resolveCheckpointPath', () => {
  it('accepts the file, the path without extension, the run dir and the checkpoints dir', async () => {
    const { runDir, path, model, sgd } = await savedRun();
    const dir = join(runDir, 'checkpoints');
    expect(resolveCheckpointPath(path)).toBe(path);
    expect(resolveCheckpointPath(join(dir, 'last'))).toBe(path);
    expect(resolveCheckpointPath(runDir)).toBe(path);
    expect(resolveCheckpointPath(dir)).toBe(path);
    expect(resolveCheckpointPath(join(dir, 'epoch-0003'))).toBe(join(dir, 'epoch-0003.safetensors'));
    dispose(model, sgd);
  });

  it('names what it expected when nothing is there', async () => {
    const empty = tempDir();
    await expectInputFileError(() => resolveCheckpointPath(empty), empty, /no checkpoint here \(expected .*last\.safetensors\)/);
    const missing = join(empty, 'nope');
    await expectInputFileError(() => resolveCheckpointPath(missing), missing, /no checkpoint here/);
    await expectInputFileError(readCheckpoint(missing), missing, /no checkpoint here/);
  });
});

describe('strict restore', () => {
  it('lists missing parameters and assigns nothing', async () => {
    const { path, model, sgd } = await savedRun(tinyConfig({}, { proj_layers: 2 }));
    const other = tinyModel(4, tinyConfig({}, { proj_layers: 3 }));
    const before = snapshot(other.store);
    const ckpt = await readCheckpoint(path);
    const e = await expectInputFileError(() => restoreCheckpoint(ckpt, other.store), path, /does not match the model/);
    expect(e.reason).toMatch(/\d+ missing: projector\.\d/);
    expect(e.reason).toContain('projector.7.running_mean');
    expectSameValues(before, snapshot(other.store));
    dispose(model, sgd, other);
  });

  it('lists shape mismatches with both shapes', async () => {
    const { path, model, sgd } = await savedRun(tinyConfig({ width: 4 }));
    const wide = tinyModel(4, tinyConfig({ width: 8 }));
    const sgdWide = tinySgd(wide.store);
    const ckpt = await readCheckpoint(path);
    const e = await expectInputFileError(() => restoreCheckpoint(ckpt, wide.store, sgdWide), path, /with other shapes/);
    expect(e.reason).toContain('backbone.conv1.weight (file [4, 3, 3, 3], model [8, 3, 3, 3])');
    expect(e.reason).toMatch(/\(\+\d+ more\)/);
    expect(sgdWide.buffers.size).toBe(0);
    dispose(model, sgd, wide, sgdWide);
  });

  it('reports tensors the model does not use', async () => {
    const { path, model, sgd } = await savedRun(tinyConfig({}, { proj_layers: 3 }));
    const smaller = tinyModel(4, tinyConfig({}, { proj_layers: 2 }));
    // With proj_hidden == proj_dim every 2-layer projector name exists in the 3-layer file with the same shape.
    const report = restoreCheckpoint(await readCheckpoint(path), smaller.store);
    expect(report.unexpected.sort()).toEqual([
      'projector.4.bias',
      'projector.4.weight',
      'projector.6.weight',
      'projector.7.running_mean',
      'projector.7.running_var',
    ]);
    dispose(model, sgd, smaller);
  });
});

describe('unreadable checkpoints', () => {
  it('reports a truncated file with its path', async () => {
    const { path, model, sgd } = await savedRun();
    const size = readFileSync(path).length;
    truncateSync(path, Math.floor(size / 2));
    await expectInputFileError(readCheckpoint(path), path, /data_offsets|truncated|exceeds/);
    truncateSync(path, 5);
    await expectInputFileError(readCheckpoint(path), path, /too short/);
    dispose(model, sgd);
  });

  it('rejects safetensors files that are not simtrip checkpoints', async () => {
    const weights = fixture('resnet-basic1111-f16', 'weights.safetensors');
    await expectInputFileError(readCheckpoint(weights), weights, /not a simtrip checkpoint.*model\.weights/);
  });

  it('rejects bad or newer metadata', async () => {
    const dir = tempDir();
    const t = [{ name: 'x', dtype: 'F32' as const, shape: [1], data: new Float32Array([1]) }];
    const bad = join(dir, 'bad.safetensors');
    await writeSafetensors(bad, t, { simtrip: '{not json' });
    await expectInputFileError(readCheckpoint(bad), bad, /metadata is not valid JSON/);
    const invalid = join(dir, 'invalid.safetensors');
    await writeSafetensors(invalid, t, { simtrip: JSON.stringify({ format: 1, epoch: -1 }) });
    await expectInputFileError(readCheckpoint(invalid), invalid, /metadata is invalid: epoch/);
    const newer = join(dir, 'newer.safetensors');
    await writeSafetensors(newer, t, { simtrip: JSON.stringify({ format: 2 }) });
    await expectInputFileError(readCheckpoint(newer), newer, /newer simtrip/);
  });
});
