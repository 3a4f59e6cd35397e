/**
 * TensorBoard event files: decoded with the same protos, framing and masked CRCs checked byte by byte,
 * scalars equal to a real run's metrics.jsonl under their stable tags, images and text as TensorBoard's
 * plugins read them, a resumed writer leaving no duplicate step, and live flushing.
 */
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import CRC32C from 'crc-32/crc32c.js';
import { beforeAll, describe, expect, it } from 'vitest';
import { thumbnail } from '../../src/data/augment.js';
import { ArrayImageDataset } from '../../src/data/dataset.js';
import { parseMetricsLog } from '../../src/report/run_data.js';
import { decodePng, encodePng } from '../../src/report/tile_sheet.js';
import { eventFiles, readEventFile } from '../../src/report/tensorboard/event_file.js';
import { datasetMetadata, PROJECTOR_CONFIG } from '../../src/report/tensorboard/projector.js';
import { frameRecord, maskedCrc32c, readRecords } from '../../src/report/tensorboard/records.js';
import { fromTextFormat, tensorBoardTypes } from '../../src/report/tensorboard/schema.js';
import { scalarsOfEvalResults, TAGS } from '../../src/report/tensorboard/tags.js';
import { markdownCode, TensorBoardWriter } from '../../src/report/tensorboard/writer.js';
import { train } from '../../src/train/trainer.js';
import { scratchDir } from '../data/fixtures.js';
import { useCpuBackend } from '../helpers.js';
import { options, runDir, tinyConfig } from '../train/helpers.js';
import { CLASSES, fakeEvalReport } from './fake_run.js';
import { allEvents, scalarTable, tfMaskedCrc, walkRecords } from './tb_events.js';

beforeAll(useCpuBackend);

describe('TFRecord framing', () => {
  it('CRC32C is the Castagnoli checksum (check value of "123456789"), masked as TensorFlow does', () => {
    expect(CRC32C.buf(Buffer.from('123456789')) >>> 0).toBe(0xe3069283);
    for (const text of ['', 'a', 'brain.Event:2', 'x'.repeat(1000)]) expect(maskedCrc32c(Buffer.from(text))).toBe(tfMaskedCrc(Buffer.from(text)));
  });

  it('frames records and reads them back; a torn or corrupt record stops the reading there', () => {
    const a = frameRecord(Buffer.from('first'));
    const b = frameRecord(Buffer.from('second record'));
    expect(a.readBigUInt64LE(0)).toBe(5n);
    const both = Buffer.concat([a, b]);
    expect(walkRecords(both).map(String)).toEqual(['first', 'second record']);
    expect(readRecords(both).records.map(String)).toEqual(['first', 'second record']);
    const torn = readRecords(both.subarray(0, both.length - 3));
    expect([torn.records.map(String), torn.validBytes]).toEqual([['first'], a.length]);
    expect(torn.problem).toMatch(/torn record/);
    const corrupt = Buffer.from(both);
    corrupt[a.length + 14] ^= 1;
    expect(readRecords(corrupt).problem).toMatch(/bad data checksum/);
    corrupt[a.length + 14] ^= 1;
    corrupt[a.length + 2] ^= 1;
    expect(readRecords(corrupt).problem).toMatch(/bad length checksum/);
  });
});

describe('TensorBoardWriter', () => {
  it('writes the scalars of a real run\'s metrics.jsonl, each at its step under its tag', async () => {
    const run = await runDir();
    const cfg = tinyConfig({ epochs: 1, knn_every: 1 });
    // Two steps: the cpu backend is slow, and two lines of metrics.jsonl test the mapping as well as many.
    await train(options({ ...cfg, data: { ...cfg.data, synthetic: { ...cfg.data.synthetic, train_size: 16 } } }, run));
    const metrics = parseMetricsLog(await readFile(join(run, 'metrics.jsonl'), 'utf8'));
    const dir = join(scratchDir(), 'tb');
    const tb = await TensorBoardWriter.open(dir);
    for (const r of [...metrics.train, ...metrics.knn]) tb.metrics(r);
    tb.close();
    const events = await allEvents(dir);
    expect(events[0]).toMatchObject({ step: 0, file_version: 'brain.Event:2' });
    expect(events[1]).toMatchObject({ step: 0, session_log: { status: tensorBoardTypes().sessionStatus.START } });
    const table = scalarTable(events);
    const tags: Record<string, string> = {
      loss: 'train/loss',
      lr: 'train/lr',
      lr_predictor: 'train/lr_predictor',
      collapse_std: 'train/collapse_std',
      img_per_s: 'perf/img_per_s',
      data_wait_ms: 'perf/data_wait_ms',
      rss_mib: 'memory/rss_mib',
      epoch: 'train/epoch',
    };
    let checked = 0;
    for (const r of metrics.train) {
      for (const [key, tag] of Object.entries(tags)) {
        expect(table.get(`${tag}@${r.step}`)).toBe(Math.fround(r[key] as number));
        checked++;
      }
    }
    for (const r of metrics.knn) expect(table.get(`monitor/knn_accuracy@${r.step}`)).toBe(Math.fround(r.accuracy as number));
    expect(metrics.knn).toHaveLength(1);
    expect(checked).toBe(8 * 2);
    // Nothing else: every scalar of the events is one of metrics.jsonl's numbers.
    expect(table.size).toBe(checked + metrics.knn.length);
  });

  it('maps loss terms, mixed16, memory and probe results to stable tags; NaN stays NaN', async () => {
    const dir = join(scratchDir(), 'tb');
    const tb = await TensorBoardWriter.open(dir);
    tb.metrics({ kind: 'train', step: 3, epoch: 1, loss: null, loss_inter: -0.5, loss_intra: -0.25, lr: 0.1, lr_predictor: 0.2, loss_scale: 32768, skipped_steps: 2, gpu_mib: 100, gpu_peak_mib: 200, data_wait_ms: 4, rss_mib: 900, time: 'x' });
    tb.metrics({ kind: 'other', step: 3, loss: 1 });
    const report = fakeEvalReport({ protocol: 'split', fractions: [0.1, 1], knn: true });
    tb.scalars(3, scalarsOfEvalResults(report.results));
    tb.close();
    const table = scalarTable(await allEvents(dir));
    expect(Object.fromEntries([...table].filter(([k]) => !k.startsWith('probe/')))).toEqual({
      'train/loss@3': Number.NaN,
      'train/loss_inter@3': -0.5,
      'train/loss_intra@3': -0.25,
      'train/epoch@3': 1,
      'train/lr@3': Math.fround(0.1),
      'train/lr_predictor@3': Math.fround(0.2),
      'mixed16/loss_scale@3': 32768,
      'mixed16/skipped_steps@3': 2,
      'memory/gpu_mib@3': 100,
      'memory/gpu_peak_mib@3': 200,
      'perf/data_wait_ms@3': 4,
      'memory/rss_mib@3': 900,
    });
    const linear10 = report.results.find((r) => r.classifier === 'linear' && r.label_fraction === 0.1)!;
    expect(table.get('probe/linear_10pct/balanced_accuracy@3')).toBe(Math.fround(linear10.metrics.balanced_accuracy));
    expect(table.get('probe/knn/macro_f1@3')).toBe(Math.fround(report.results.find((r) => r.classifier === 'knn')!.metrics.macro_f1));
    expect([...table.keys()].filter((k) => k.startsWith('probe/'))).toHaveLength(9);
  });

  it('writes PNG images (Summary.Image) and Markdown text for the text plugin', async () => {
    const dir = join(scratchDir(), 'tb');
    const tb = await TensorBoardWriter.open(dir);
    const pixels = Uint8Array.from({ length: 5 * 3 * 3 }, (_, i) => (i * 17) & 255);
    const png = encodePng({ width: 5, height: 3, pixels });
    tb.image(TAGS.views, 1, png);
    tb.text(TAGS.config, 0, 'name: demo');
    tb.text(TAGS.config, 4, 'name: demo2');
    tb.text(TAGS.runInfo, 0, markdownCode('{\n "name": "demo"\n}\n'));
    expect(() => tb.image('x', 1, Buffer.from('not a png'))).toThrow(/not a PNG/);
    tb.close();
    expect(() => tb.scalar('x', 1, 1)).toThrow(/closed/);
    const values = (await allEvents(dir)).flatMap((e) => (e.summary?.value ?? []).map((v) => ({ step: e.step, ...v })));
    const image = values.find((v) => v.tag === 'views/train')!;
    expect(image.image).toMatchObject({ width: 5, height: 3, colorspace: 3 });
    expect(decodePng(image.image!.encoded_image_string).pixels).toEqual(pixels);
    const texts = values.filter((v) => v.tag === 'run/config');
    const { dataType, dataClass } = tensorBoardTypes();
    expect(texts.map((t) => [t.step, t.tensor!.dtype, String(t.tensor!.string_val![0]), t.tensor!.tensor_shape!.dim![0]!.size])).toEqual([
      [0, dataType.DT_STRING, 'name: demo', 1],
      [4, dataType.DT_STRING, 'name: demo2', 1],
    ]);
    expect(texts[0]!.metadata).toMatchObject({ plugin_data: { plugin_name: 'text' }, data_class: dataClass.DATA_CLASS_TENSOR });
    expect(texts[1]!.metadata).toBeNull();
    // JSON and YAML go in as a Markdown code block (indented), so TensorBoard shows them verbatim.
    expect(String(values.find((v) => v.tag === 'run/run.json')!.tensor!.string_val![0])).toBe('    {\n     "name": "demo"\n    }');
  });

  it('a resumed writer (purgeStep) removes the steps it logs again; no duplicates, TensorBoard told by START', async () => {
    const dir = join(scratchDir(), 'tb');
    let clock = 1_000_000;
    const now = () => clock;
    const first = await TensorBoardWriter.open(dir, { now });
    for (let s = 1; s <= 10; s++) first.scalars(s, { 'train/loss': -s / 10, 'train/lr': 0.1 });
    first.image(TAGS.views, 8, encodePng({ width: 1, height: 1, pixels: new Uint8Array(3) }));
    first.text(TAGS.config, 0, 'config');
    first.close();
    clock += 5000;
    const second = await TensorBoardWriter.open(dir, { purgeStep: 7, now });
    expect(second.purged).toEqual({ files: [first.file], events: 5 });
    expect(second.file).not.toBe(first.file);
    for (let s = 7; s <= 12; s++) second.scalars(s, { 'train/loss': -s / 5, 'train/lr': 0.05 });
    second.close();
    expect(await eventFiles(dir)).toEqual([first.file, second.file]);
    const events = await allEvents(dir);
    const table = scalarTable(events);
    for (let s = 1; s <= 12; s++) expect(table.get(`train/loss@${s}`)).toBe(Math.fround(s <= 6 ? -s / 10 : -s / 5));
    expect(events.filter((e) => e.summary?.value.some((v) => v.tag === TAGS.views))).toHaveLength(0);
    const starts = events.filter((e) => e.session_log?.status === tensorBoardTypes().sessionStatus.START).map((e) => e.step);
    expect(starts).toEqual([0, 7]);
    expect(events.filter((e) => e.file_version).map((e) => e.step)).toEqual([0, 7]);
    // The file TensorBoard may already have read was rewritten whole: its records still check out.
    expect(Math.max(...(await readEventFile(first.file)).events.map((e) => e.step))).toBe(6);
    await expect(TensorBoardWriter.open(dir, { purgeStep: -1 })).rejects.toThrow(/purgeStep/);
  });

  it('drop replaces values: those tags at that step leave the earlier files, the rest stays; an adding writer writes no session start', async () => {
    const dir = join(scratchDir(), 'tb');
    const first = await TensorBoardWriter.open(dir);
    first.scalars(5, { 'probe/knn/accuracy': 0.5, 'probe/knn/macro_f1': 0.4, 'train/loss': -0.9 });
    first.scalars(6, { 'probe/knn/accuracy': 0.6 });
    first.image(TAGS.umap(), 5, encodePng({ width: 1, height: 1, pixels: new Uint8Array(3) }));
    first.close();
    const second = await TensorBoardWriter.open(dir, { drop: { step: 5, tags: ['probe/knn/accuracy', 'probe/knn/macro_f1', TAGS.umap()] }, sessionStart: false });
    expect(second.purged).toEqual({ files: [first.file], events: 2 });
    second.scalars(5, { 'probe/knn/accuracy': 0.75, 'probe/knn/macro_f1': 0.7 });
    second.close();
    const events = await allEvents(dir);
    expect(Object.fromEntries(scalarTable(events))).toEqual({
      'probe/knn/accuracy@5': 0.75,
      'probe/knn/macro_f1@5': Math.fround(0.7),
      'train/loss@5': Math.fround(-0.9),
      'probe/knn/accuracy@6': Math.fround(0.6),
    });
    expect(events.filter((e) => e.summary?.value.some((v) => v.image))).toHaveLength(0);
    expect((await readEventFile(second.file)).events.filter((e) => e.session_log)).toEqual([]);
  });

  it('a purge (a resume) also cuts a torn tail from a file it would otherwise keep; a drop (an eval, maybe beside a live writer) leaves such a file alone', async () => {
    const dir = join(scratchDir(), 'tb');
    const first = await TensorBoardWriter.open(dir);
    first.scalar('train/loss', 2, 1);
    first.close();
    const whole = await readFile(first.file);
    const torn = Buffer.concat([whole, whole.subarray(0, 30)]);
    await writeFile(first.file, torn);
    expect((await readEventFile(first.file)).problem).toMatch(/torn/);
    const evaluation = await TensorBoardWriter.open(dir, { drop: { step: 2, tags: ['probe/knn/accuracy'] }, sessionStart: false });
    evaluation.close();
    expect(evaluation.purged.files).toEqual([]);
    expect(await readFile(first.file)).toEqual(torn);
    const second = await TensorBoardWriter.open(dir, { purgeStep: 9 });
    second.close();
    expect(second.purged.files).toEqual([first.file]);
    expect(await readFile(first.file)).toEqual(whole);
  });

  it('epoch records give their means under epoch/', async () => {
    const dir = join(scratchDir(), 'tb');
    const tb = await TensorBoardWriter.open(dir);
    tb.metrics({ kind: 'epoch', step: 8, epoch: 2, loss: -0.5, loss_inter: -0.25, collapse_std: 0.1 });
    tb.close();
    expect(Object.fromEntries(scalarTable(await allEvents(dir)))).toEqual({ 'epoch/loss@8': -0.5, 'epoch/loss_inter@8': -0.25, 'epoch/collapse_std@8': Math.fround(0.1) });
  });

  it('flushes on its own: after flushSeconds at the next write, and by timer between writes', async () => {
    const dir = join(scratchDir(), 'tb');
    let clock = 0;
    const tb = await TensorBoardWriter.open(dir, { flushSeconds: 0.2, now: () => clock });
    const count = async () => (await readEventFile(tb.file)).events.length;
    expect(await count()).toBe(2);
    tb.scalar('a', 1, 1);
    expect(await count()).toBe(2);
    clock += 250;
    tb.scalar('a', 2, 2);
    expect(await count()).toBe(4);
    tb.scalar('a', 3, 3);
    await new Promise((r) => setTimeout(r, 400));
    expect(await count()).toBe(5);
    tb.close();
    expect((await readEventFile(tb.file)).events.map((e) => e.wall_time)).toEqual([0, 0, 0, 0.25, 0.25]);
  });
});

describe('projector', () => {
  const side = 6;
  const images = new ArrayImageDataset(
    Uint8Array.from({ length: 5 * side * side * 3 }, (_, i) => (i * 7 + (i >> 4)) & 255),
    side,
    side,
    Int32Array.from([0, 1, 2, 1, 0]),
    CLASSES,
    { groups: Int32Array.from([0, 0, 1, 1, 1]), groupNames: ['slide-a', 'slide-b'], sources: ['/d/a.png', '/d/b.png', '/d/c.png', '/d/d\tx.png', '/d/e.png'] },
  );
  const features = Float32Array.from({ length: 5 * 3 }, (_, i) => Math.sin(i) * 1e-3 + i / 7);

  it('writes tensors, metadata and sprite, and lists them in projector_config.pbtxt', async () => {
    const dir = join(scratchDir(), 'tb');
    const tb = await TensorBoardWriter.open(dir);
    const written = await tb.projector({ name: 'test', features, dim: 3, metadata: datasetMetadata(images, 'test', 'slide'), images, thumbnailSide: 4 });
    tb.close();
    const config = fromTextFormat(tensorBoardTypes().ProjectorConfig, await readFile(join(dir, PROJECTOR_CONFIG), 'utf8'));
    expect(config).toEqual({
      embeddings: [
        {
          tensor_name: 'test',
          tensor_shape: [5, 3],
          tensor_path: 'projector/test/tensors.tsv',
          metadata_path: 'projector/test/metadata.tsv',
          sprite: { image_path: 'projector/test/sprite.png', single_image_dim: [4, 4] },
        },
      ],
    });
    const rows = (await readFile(join(dir, 'projector/test/tensors.tsv'), 'utf8')).trim().split('\n');
    expect(Float32Array.from(rows.flatMap((r) => r.split('\t').map(Number)))).toEqual(features);
    expect((await readFile(join(dir, 'projector/test/metadata.tsv'), 'utf8')).split('\n')).toEqual([
      'label\tclass\tslide\tsource\tsplit',
      '0\ttumour\tslide-a\ta.png\ttest',
      '1\tstroma\tslide-a\tb.png\ttest',
      '2\tlymph\tslide-b\tc.png\ttest',
      '1\tstroma\tslide-b\td x.png\ttest',
      '0\ttumour\tslide-b\te.png\ttest',
      '',
    ]);
    // Sprite: a 3 x 2 grid of 4 px thumbnails in row order, the last cell empty (white).
    const sprite = decodePng(await readFile(join(dir, 'projector/test/sprite.png')));
    expect([sprite.width, sprite.height]).toEqual([12, 8]);
    for (let i = 0; i < 5; i++) {
      const t = thumbnail(images, i, 4);
      const [x0, y0] = [(i % 3) * 4, Math.floor(i / 3) * 4];
      for (let y = 0; y < 4; y++) {
        const at = ((y0 + y) * 12 + x0) * 3;
        expect(sprite.pixels.subarray(at, at + 12)).toEqual(t.subarray(y * 12, y * 12 + 12));
      }
    }
    expect(written.files.map((f) => f.slice(dir.length + 1)).sort()).toEqual(['projector/test/metadata.tsv', 'projector/test/sprite.png', 'projector/test/tensors.tsv']);
  });

  it('keeps other embeddings, replaces one of the same name; binary tensors are raw float32', async () => {
    const dir = scratchDir();
    const tb = await TensorBoardWriter.open(dir);
    await tb.projector({ name: 'a', features, dim: 3 });
    await tb.projector({ name: 'b', features, dim: 3, format: 'binary', metadata: [{ name: 'label', values: [0, 1, 2, 1, 0] }] });
    await tb.projector({ name: 'a', features: features.subarray(0, 6), dim: 3 });
    tb.close();
    const config = fromTextFormat(tensorBoardTypes().ProjectorConfig, await readFile(join(dir, PROJECTOR_CONFIG), 'utf8')) as { embeddings: Array<Record<string, unknown>> };
    expect(config.embeddings.map((e) => [e.tensor_name, e.tensor_shape, e.tensor_path])).toEqual([
      ['b', [5, 3], 'projector/b/tensors.bytes'],
      ['a', [2, 3], 'projector/a/tensors.tsv'],
    ]);
    const bytes = await readFile(join(dir, 'projector/b/tensors.bytes'));
    expect(new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4)).toEqual(features);
    // One metadata column: no header line.
    expect(await readFile(join(dir, 'projector/b/metadata.tsv'), 'utf8')).toBe('0\n1\n2\n1\n0\n');
    expect(await readdir(join(dir, 'projector'))).toEqual(['a', 'b']);
    await expect(tb.projector({ name: 'c', features, dim: 4 })).rejects.toThrow(/not N x 4/);
    await expect(tb.projector({ name: 'a/b', features, dim: 3 })).rejects.toThrow(/letters, digits/);
  });
});
