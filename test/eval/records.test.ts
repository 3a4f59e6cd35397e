import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigSchema } from '../../src/config/schema.js';
import {
  dataDifferences,
  dataKey,
  EVALS_DIR,
  evalRecords,
  readEvalRecords,
  recordDir,
  recordId,
  saveEvalRecords,
  type EvalKey,
  type EvalRecord,
} from '../../src/eval/records.js';
import { fakeCheckpoint, fakeEvalReport, FAKE_CONFIG } from '../report/fake_run.js';

const KEY: EvalKey = {
  encoder: { kind: 'checkpoint', file: 'checkpoints/last.safetensors', step: 18 },
  data: dataKey(FAKE_CONFIG.data),
  protocol: 'logo',
  classifier: 'linear',
  label_fraction: 0.1,
  probe: { epochs: 5, base_lr: 0.1 },
  seed: 0,
};

async function home(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'simtrip-records-'));
}

describe('recordId', () => {
  it('is stable for a key, a safe folder name, and differs with anything the key holds', () => {
    const id = recordId(KEY);
    expect(id).toMatch(/^linear-10pct-step18-[0-9a-f]{10}$/);
    // Key order does not matter: the hash is of canonical JSON.
    expect(recordId({ seed: 0, ...KEY, probe: { base_lr: 0.1, epochs: 5 } })).toBe(id);
    const variants: EvalKey[] = [
      { ...KEY, label_fraction: 0.01 },
      { ...KEY, encoder: { ...KEY.encoder, step: 24 } as EvalKey['encoder'] },
      { ...KEY, encoder: { kind: 'checkpoint', file: 'checkpoints/epoch-0003.safetensors', step: 18 } },
      { ...KEY, data: dataKey({ ...FAKE_CONFIG.data, root: 'elsewhere' }) },
      { ...KEY, protocol: 'split' },
      { ...KEY, probe: { epochs: 6, base_lr: 0.1 } },
      { ...KEY, seed: 1 },
    ];
    const ids = new Set([id, ...variants.map(recordId)]);
    expect(ids.size).toBe(variants.length + 1);
    expect(recordId({ ...KEY, classifier: 'knn', label_fraction: 1, encoder: { kind: 'random-init', model: {} } })).toMatch(/^knn-random-init-[0-9a-f]{10}$/);
    expect(recordId({ ...KEY, label_fraction: 0.005 })).toMatch(/^linear-0p5pct-step18-/);
  });

  it('keys the data by what selects the images: workers, cache and augmentation do not count', () => {
    const d = FAKE_CONFIG.data;
    expect(dataKey({ ...d, workers: 4, cache_dir: 'x', keep_images: 'disk' })).toEqual(dataKey(d));
    expect(dataKey({ ...d, limit: 64 }).hash).not.toBe(dataKey(d).hash);
  });
});

describe('dataDifferences', () => {
  it('names the settings in which evaluation data is another data set than the training data', () => {
    const d = ConfigSchema.parse({ data: { kind: 'patches', root: 'data/pathology/patches', labelled: { root: 'data/pathology/labelled' } } }).data;
    // Limits, image size and loading settings leave it the same data set.
    expect(dataDifferences(d, { ...d, limit: 10, test_limit: 5, image_size: 64, workers: 2, root: './data/pathology/patches/' })).toEqual([]);
    expect(dataDifferences(d, { ...d, kind: 'folder', root: 'data/other' })).toEqual(['data.kind folder (trained on patches)', 'data.root data/other (trained on data/pathology/patches)']);
  });
});

describe('saveEvalRecords / readEvalRecords', () => {
  const report = (fractions: number[], dir: string) => fakeEvalReport({ protocol: 'logo', fractions, knn: true }, fakeCheckpoint(dir, 40, 10));

  it('accumulates records; the same key replaces only its own record, with the files beside it', async () => {
    const dir = await home();
    const first = evalRecords(report([0.01, 1], dir), FAKE_CONFIG, dir);
    const saved = await saveEvalRecords(dir, first.map((record) => ({ record, files: { 'probe.bin': Buffer.from('old probe') } })));
    expect(saved.added.map((r) => r.id)).toEqual(first.map((r) => r.id));
    expect(saved.replaced).toEqual([]);

    // Another fraction and the same kNN: one record added, one replaced; 1 % and 100 % untouched.
    const second = evalRecords({ ...report([0.1], dir), created: '2026-02-02T00:00:00.000Z' }, FAKE_CONFIG, dir);
    const knnBefore = await readFile(join(recordDir(dir, first[2]!.id), 'record.json'), 'utf8');
    const again = await saveEvalRecords(dir, second.map((record) => ({ record })));
    expect(again.added.map((r) => r.id)).toEqual([second[0]!.id]);
    expect(again.replaced.map((r) => r.id)).toEqual([first[2]!.id]);
    expect(JSON.parse(knnBefore).created).toBe(again.replaced[0]!.created);
    // The replaced record's folder holds only what the new record brought: no stale probe.
    expect(await readdir(recordDir(dir, first[2]!.id))).toEqual(['record.json']);
    expect(await readFile(join(recordDir(dir, first[0]!.id), 'probe.bin'), 'utf8')).toBe('old probe');

    const { records, unreadable } = await readEvalRecords(dir);
    expect(records.map((r) => r.id).sort()).toEqual([...first.map((r) => r.id), second[0]!.id].sort());
    expect(unreadable).toEqual([]);
    expect((await readdir(join(dir, EVALS_DIR))).filter((n) => n.startsWith('.'))).toEqual([]);
  });

  it('reads past folders being written (dot names) and names the ones that are not records', async () => {
    const dir = await home();
    const [record] = evalRecords(report([1], dir), FAKE_CONFIG, dir) as [EvalRecord];
    await saveEvalRecords(dir, [{ record }]);
    await mkdir(join(dir, EVALS_DIR, '.linear-1pct-step40-0123456789.123.tmp'), { recursive: true });
    await mkdir(join(dir, EVALS_DIR, 'broken'), { recursive: true });
    await writeFile(join(dir, EVALS_DIR, 'broken', 'record.json'), '{"format": 1, "id": "br');
    const { records, unreadable } = await readEvalRecords(dir);
    expect(records.map((r) => r.id)).toEqual([record.id]);
    expect(unreadable).toEqual([join(dir, EVALS_DIR, 'broken')]);
    expect(existsSync(join(dir, EVALS_DIR, record.id, 'record.json'))).toBe(true);
  });

  it('a checkpoint outside the folder holding the records is keyed by its absolute path', () => {
    const [record] = evalRecords(report([1], '/elsewhere/run'), FAKE_CONFIG, '/tmp/home');
    expect(record!.key.encoder).toEqual({ kind: 'checkpoint', file: '/elsewhere/run/checkpoints/last.safetensors', step: 40 });
  });
});
