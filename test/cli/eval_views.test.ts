/**
 * What `simtrip eval` and `simtrip embed --projector` show of an encoder, through the CLI on a trained
 * run: each record keeps the UMAP and neighbour grid, the run's report draws them per encoder and data
 * (and removes those that no longer belong), and the run's tb/ gets the probe scores (equal to the
 * records), the confusion matrices, the UMAP and the grid as images and the projector's files,
 * beside the training's events and without disturbing them; an evaluation written again replaces its
 * values. logging.tensorboard false writes no tb/.
 */
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { readImageResized } from '../../src/io/image.js';
import { svgToPng } from '../../src/report/png.js';
import { eventFiles, readEventFile } from '../../src/report/tensorboard/event_file.js';
import { PROJECTOR_CONFIG } from '../../src/report/tensorboard/projector.js';
import { fromTextFormat, tensorBoardTypes } from '../../src/report/tensorboard/schema.js';
import { TAGS } from '../../src/report/tensorboard/tags.js';
import { decodePng } from '../../src/report/tile_sheet.js';
import { scratchDir } from '../data/fixtures.js';
import { allEvents, expectedScalars, otherValues, scalarTable } from '../report/tb_events.js';
import { resetExitCodeAfterEach, runCli, TINY_CONFIG } from './run_cli.js';

resetExitCodeAfterEach();


type Record = { id: string; result: { classifier: string; label_fraction: number; metrics: { accuracy: number; balanced_accuracy: number; macro_f1: number } } };

describe('eval shows the features: records, report and TensorBoard', () => {
  let dir: string;
  let config: string;
  const run = () => join(dir, 'run');
  const tb = () => join(run(), 'tb');
  const records = async (): Promise<Record[]> =>
    Promise.all((await readdir(join(run(), 'evals'))).filter((n) => !n.startsWith('.')).map(async (id) => JSON.parse(await readFile(join(run(), 'evals', id, 'record.json'), 'utf8')) as Record));

  beforeAll(async () => {
    dir = scratchDir('simtrip-views-');
    config = join(dir, 'tiny.yaml');
    await writeFile(config, TINY_CONFIG);
    const r = await runCli('train', '--config', config, '--run-dir', run());
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`tensorboard ${tb()} (view: tensorboard --logdir ${dir})`);
  }, 120_000);

  it('every record keeps the UMAP and the grid; the report draws them once per encoder and data; tb/ gets scores, images and the projector', async () => {
    const trainingBefore = scalarTable(await allEvents(tb()));
    const r = await runCli('eval', '--config', config, '--checkpoint', run(), '--linear-probe', '--knn', '--label-fraction', '0.5,1');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(new RegExp(`^tensorboard ${tb()} at step 8: 9 scalars, 5 images, projector features-step8$`, 'm'));
    const recs = await records();
    expect(recs).toHaveLength(3);
    const umap = await readFile(join(run(), 'evals', recs[0]!.id, 'umap.svg'), 'utf8');
    for (const rec of recs) {
      expect(await readFile(join(run(), 'evals', rec.id, 'umap.svg'), 'utf8')).toBe(umap);
      expect(await readFile(join(run(), 'evals', rec.id, 'neighbours.svg'), 'utf8')).toContain('<svg');
    }
    // One point per test image.
    expect([...umap.matchAll(/<circle /g)]).toHaveLength(20);

    // The report: one UMAP and one grid for the group, as PNG beside SVG, linked from summary.md.
    const report = await readdir(join(run(), 'report'));
    const umaps = report.filter((f) => /^umap-.+\.png$/.test(f));
    expect(umaps).toHaveLength(1);
    expect(report).toContain(umaps[0]!.replace('umap-', 'neighbours-'));
    expect(report).toContain(umaps[0]!.replace('.png', '.svg'));
    const md = await readFile(join(run(), 'report', 'summary.md'), 'utf8');
    expect(md).toContain(`](${umaps[0]})`);
    expect(md).toContain(`](${umaps[0]!.replace('umap-', 'neighbours-')})`);
    expect(await readFile(join(run(), 'report', umaps[0]!.replace('.png', '.svg')), 'utf8')).toBe(umap);

    // TensorBoard: the eval's own file, no session start (which would hide the training's events).
    const files = await eventFiles(tb());
    expect(files).toHaveLength(2);
    expect((await readEventFile(files[1]!)).events.filter((e) => e.session_log)).toEqual([]);
    const events = await allEvents(tb());
    const table = scalarTable(events);
    expect(new Map([...table].filter(([k]) => !k.startsWith('probe/')))).toEqual(trainingBefore);
    expect(new Map([...trainingBefore].filter(([k]) => !k.startsWith('probe/')))).toEqual(expectedScalars((await readFile(join(run(), 'metrics.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l))));
    for (const rec of recs) {
      const name = rec.result.classifier === 'knn' ? 'knn' : `linear_${rec.result.label_fraction * 100}pct`;
      for (const m of ['accuracy', 'balanced_accuracy', 'macro_f1'] as const) expect(table.get(`probe/${name}/${m}@8`), `${name} ${m}`).toBe(Math.fround(rec.result.metrics[m]));
    }
    const images = otherValues(events);
    for (const tag of [TAGS.confusion('linear_50pct'), TAGS.confusion('linear_100pct'), TAGS.confusion('knn'), TAGS.umap(), TAGS.neighbours()]) {
      expect(images.get(`${tag}@8`)?.image, tag).toBeDefined();
    }
    // The UMAP image is the record's chart, pixel for pixel.
    expect(decodePng(images.get(`${TAGS.umap()}@8`)!.image!.encoded_image_string).pixels).toEqual(decodePng(await svgToPng(umap)).pixels);

    // The projector: the 20 test features (32-d), a metadata row each, a sprite of 20 thumbnails.
    const pbtxt = fromTextFormat(tensorBoardTypes().ProjectorConfig, await readFile(join(tb(), PROJECTOR_CONFIG), 'utf8')) as { embeddings: Array<{ tensor_name: string; tensor_shape: number[]; metadata_path: string; sprite: { single_image_dim: number[] } }> };
    expect(pbtxt.embeddings.map((e) => [e.tensor_name, e.tensor_shape])).toEqual([['features-step8', [20, 32]]]);
    const rows = (await readFile(join(tb(), 'projector/features-step8/tensors.tsv'), 'utf8')).trim().split('\n');
    expect(rows.map((l) => l.split('\t').length)).toEqual(new Array(20).fill(32));
    const meta = (await readFile(join(tb(), pbtxt.embeddings[0]!.metadata_path), 'utf8')).trim().split('\n');
    expect(meta[0]).toBe('label\tclass\tsplit');
    expect(meta).toHaveLength(21);
    const sprite = decodePng(await readFile(join(tb(), 'projector/features-step8/sprite.png')));
    expect([sprite.width, sprite.height]).toEqual([5 * 16, 4 * 16]);
  });

  it('evaluated again: the values replace the earlier ones (no (tag, step) twice); other data gets tags, a projector and report charts of its own, removed with its records', async () => {
    for (let i = 0; i < 2; i++) {
      const again = await runCli('eval', '--config', config, '--checkpoint', run(), '--knn');
      expect(again.code, again.stderr).toBe(0);
    }
    const other = await runCli('eval', '--config', config, '--checkpoint', run(), '--knn', '--set', 'data.synthetic.test_size=12');
    expect(other.code, other.stderr).toBe(0);
    const scope = /projector features-step8-data-([0-9a-f]{8})$/m.exec(other.stderr)![1]!;
    const events = await allEvents(tb());
    const table = scalarTable(events);
    const images = otherValues(events);
    const recs = await records();
    const knn = recs.filter((x) => x.result.classifier === 'knn');
    expect(knn).toHaveLength(2);
    const values = knn.map((x) => Math.fround(x.result.metrics.balanced_accuracy)).sort();
    expect([table.get('probe/knn/balanced_accuracy@8'), table.get(`probe/knn_data-${scope}/balanced_accuracy@8`)].sort()).toEqual(values);
    for (const tag of [TAGS.umap(), TAGS.umap(`_data-${scope}`), TAGS.neighbours(`_data-${scope}`), TAGS.confusion(`knn_data-${scope}`)]) expect(images.has(`${tag}@8`), tag).toBe(true);
    const pbtxt = await readFile(join(tb(), PROJECTOR_CONFIG), 'utf8');
    expect(pbtxt).toContain(`features-step8-data-${scope}`);
    expect(pbtxt).toContain('"features-step8"');
    const report = (await readdir(join(run(), 'report'))).filter((f) => /^(umap|neighbours)-.+\.png$/.test(f));
    expect(report).toHaveLength(4);
    const md = await readFile(join(run(), 'report', 'summary.md'), 'utf8');
    // The other data's group is the one whose section says so; its charts carry the group's id.
    const otherGroup = report.map((f) => f.replace(/^(umap|neighbours)-/, '').replace('.png', '')).find((id) => new RegExp(`\\[UMAP of the features: [^\\]]*other data[^\\]]*\\]\\(umap-${id}\\.png\\)`).test(md))!;
    expect(otherGroup).toBeDefined();

    // The other data's record removed: the next report drops its UMAP and grid, keeps the others.
    const otherRecord = knn.find((x) => (JSON.parse(JSON.stringify(x)) as { other_data?: unknown }).other_data)!;
    await rm(join(run(), 'evals', otherRecord.id), { recursive: true });
    expect((await runCli('report', run())).code).toBe(0);
    const left = (await readdir(join(run(), 'report'))).filter((f) => /^(umap|neighbours)-.+\.(png|svg)$/.test(f));
    expect(left.sort()).toEqual(report.filter((f) => !f.includes(otherGroup)).flatMap((f) => [f, f.replace('.png', '.svg')]).sort());
    expect(left).toHaveLength(4);
  });

  it('logging.tensorboard false: train and eval write no tb/', async () => {
    const quiet = join(dir, 'quiet');
    const t = await runCli('train', '--config', config, '--run-dir', quiet, '--set', 'train.epochs=1', '--set', 'logging.tensorboard=false');
    expect(t.code, t.stderr).toBe(0);
    const e = await runCli('eval', '--config', config, '--checkpoint', quiet, '--knn', '--set', 'logging.tensorboard=false');
    expect(e.code, e.stderr).toBe(0);
    expect(existsSync(join(quiet, 'tb'))).toBe(false);
    expect(t.stderr + e.stderr).not.toContain('tensorboard');
    // The report's pictures do not depend on TensorBoard.
    expect((await readdir(join(quiet, 'report'))).filter((f) => /^(umap|neighbours)-.+\.png$/.test(f))).toHaveLength(2);
  });

  it('embed --projector: features, file names and a sprite of the images, in a folder TensorBoard reads as a run', async () => {
    const images = join(dir, 'images');
    await mkdir(images, { recursive: true });
    const names = ['b.png', 'a.png', 'c.jpg'];
    for (const [i, name] of names.entries()) {
      const pixels = Buffer.from(Array.from({ length: 20 * 24 * 3 }, (_, k) => (k * (i + 3) + 50 * i) & 255));
      await sharp(pixels, { raw: { width: 24, height: 20, channels: 3 } }).toFile(join(images, name));
    }
    const out = join(dir, 'feats.npy');
    const r = await runCli('embed', '--config', config, '--checkpoint', run(), '--images', images, '--out', out, '--projector');
    expect(r.code, r.stderr).toBe(0);
    const projector = join(dir, 'feats-projector');
    expect(r.stdout).toContain(`projector images -> ${projector} (tensorboard --logdir ${projector})`);
    const pbtxt = fromTextFormat(tensorBoardTypes().ProjectorConfig, await readFile(join(projector, PROJECTOR_CONFIG), 'utf8')) as { embeddings: Array<{ tensor_name: string; tensor_shape: number[] }> };
    expect(pbtxt.embeddings.map((e) => [e.tensor_name, e.tensor_shape])).toEqual([['images', [3, 32]]]);
    expect(await readFile(join(projector, 'projector/images/metadata.tsv'), 'utf8')).toBe('a.png\nb.png\nc.jpg\n');
    const sprite = decodePng(await readFile(join(projector, 'projector/images/sprite.png')));
    expect([sprite.width, sprite.height]).toEqual([2 * 64, 2 * 64]);
    // Thumbnail of b.png (row 1) at the sprite's second cell.
    const thumb = (await readImageResized(join(images, 'b.png'), 64)).data;
    for (const [x, y] of [[0, 0], [30, 40], [63, 63]] as const) {
      const at = (y * sprite.width + 64 + x) * 3;
      expect(Array.from(sprite.pixels.subarray(at, at + 3))).toEqual(Array.from(thumb.subarray((y * 64 + x) * 3, (y * 64 + x) * 3 + 3)));
    }
    const [events] = await eventFiles(projector);
    expect((await readEventFile(events!)).events.map((e) => e.file_version)).toEqual(['brain.Event:2']);
    // The features are those of the .npy, row for row.
    const tsv = (await readFile(join(projector, 'projector/images/tensors.tsv'), 'utf8')).trim().split('\n').map((l) => l.split('\t').map(Number));
    const { readNpy } = await import('../../src/io/npy.js');
    const npy = await readNpy(out);
    expect(Float32Array.from(tsv.flat())).toEqual(npy.data);
  });
});
