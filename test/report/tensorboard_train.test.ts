/**
 * train writing TensorBoard events (TensorBoardTrainingLog through TrainOptions.logs): every record
 * of metrics.jsonl as scalars at its step and nothing else; the view grids at the first step and every
 * knn_every epochs, with the pixels the steps were fed; config and run.json as text; and across a stop
 * and --resume, a resume stopped at once, and a kill that left events past the checkpoint (and a torn
 * record), the same scalars and images as the uninterrupted run, no (tag, step) twice.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { viewPixels } from '../../src/data/augment.js';
import { encodeEvent, eventFiles, readEventFile, type EventRecord } from '../../src/report/tensorboard/event_file.js';
import { TAGS } from '../../src/report/tensorboard/tags.js';
import { TensorBoardTrainingLog } from '../../src/report/tensorboard/training_log.js';
import { TB_DIR } from '../../src/report/tensorboard/writer.js';
import { decodePng } from '../../src/report/tile_sheet.js';
import type { TrainingLog, ViewBatch } from '../../src/train/metrics_log.js';
import { train } from '../../src/train/trainer.js';
import { tf } from '../../src/engine/tf.js';
import { useCpuBackend } from '../helpers.js';
import { metricsOf, options, runDir, tinyConfig } from '../train/helpers.js';
import { allEvents, computedScalars, expectedScalars, otherValues, scalarTable } from './tb_events.js';

beforeAll(useCpuBackend);


/** 2 epochs of 4 steps, a metrics line every 3 steps, kNN (and a view grid) every epoch. */
const cfg = () => tinyConfig({ epochs: 2, log_every: 3, knn_every: 1 });

/** A log that keeps the views the trainer handed over. */
function viewSpy(): { log: TrainingLog; batches: Array<{ step: number; first: Float32Array[] }> } {
  const batches: Array<{ step: number; first: Float32Array[] }> = [];
  const per = 16 * 16 * 3;
  const log: TrainingLog = {
    resumeAt: async () => undefined,
    append: () => undefined,
    flush: async () => undefined,
    views: (b: ViewBatch) => void batches.push({ step: b.step, first: b.views.map((v) => v.slice(0, 8 * per)) }),
  };
  return { log, batches };
}

/**
 * `log` with every call watched for tensor reads (each a device sync on a GPU engine): the log must
 * work from the numbers and host buffers the trainer hands it.
 */
function watchTensorReads(log: TensorBoardTrainingLog): { log: TrainingLog; reads: () => number; restore: () => void } {
  let inside = false;
  let reads = 0;
  const proto = tf.Tensor.prototype as unknown as Record<string, (...args: unknown[]) => unknown>;
  const originals = ['dataSync', 'data', 'arraySync', 'array', 'bufferSync', 'buffer'].map((name) => [name, proto[name]!] as const);
  for (const [name, original] of originals) {
    proto[name] = function (this: unknown, ...args: unknown[]) {
      if (inside) reads++;
      return original.apply(this, args);
    };
  }
  const watch = <T>(f: () => T): T => {
    inside = true;
    try {
      return f();
    } finally {
      inside = false;
    }
  };
  return {
    log: {
      resumeAt: (step) => watch(() => log.resumeAt(step)),
      started: (run) => watch(() => log.started(run)),
      append: (record) => watch(() => log.append(record)),
      views: (batch) => watch(() => log.views(batch)),
      flush: () => watch(() => log.flush()),
      close: () => watch(() => log.close()),
    },
    reads: () => reads,
    restore: () => originals.forEach(([name, original]) => (proto[name] = original)),
  };
}

describe('train writes TensorBoard events', () => {
  let full: string;
  let fullEvents: EventRecord[];
  let spied: Awaited<ReturnType<typeof viewSpy>>['batches'];
  let readsInLog: number;

  beforeAll(async () => {
    full = await runDir();
    const spy = viewSpy();
    const watched = watchTensorReads(new TensorBoardTrainingLog(full));
    try {
      await train(options(cfg(), full, { logs: [watched.log, spy.log] }));
    } finally {
      watched.restore();
    }
    readsInLog = watched.reads();
    spied = spy.batches;
    fullEvents = await allEvents(join(full, TB_DIR));
  });

  it('reads no tensor: a GPU step pays nothing for it beyond the scalars the trainer reads anyway', () => {
    expect(readsInLog).toBe(0);
  });

  it('the scalars are metrics.jsonl\'s records, each value at its step, and nothing else', async () => {
    const table = scalarTable(fullEvents);
    const expected = expectedScalars(await metricsOf(full));
    expect(table).toEqual(expected);
    // Every kind of record and every number the issue asks for is among them.
    for (const tag of [TAGS.loss, TAGS.lr, TAGS.lrPredictor, TAGS.collapseStd, TAGS.imgPerS, TAGS.dataWaitMs, TAGS.rssMib, TAGS.knnAccuracy, TAGS.epochMean('loss')]) {
      expect([...table.keys()].some((k) => k.startsWith(`${tag}@`)), tag).toBe(true);
    }
    expect([...table.keys()].filter((k) => k.startsWith(`${TAGS.loss}@`)).sort()).toEqual(['train/loss@3', 'train/loss@4', 'train/loss@7', 'train/loss@8']);
    expect(table.get('train/lr_predictor@3')).toBe(Math.fround(0.05 * 8 / 256));
  });

  it('view grids at the first step of each kNN period, with the pixels the steps were fed; config and run.json as text', async () => {
    const other = otherValues(fullEvents);
    expect([...other.keys()].sort()).toEqual([`${TAGS.runInfo}@0`, `${TAGS.config}@0`, `${TAGS.views}@1`, `${TAGS.views}@5`].sort());
    expect(spied.map((b) => b.step)).toEqual([1, 5]);
    for (const { step, first } of spied) {
      const image = other.get(`${TAGS.views}@${step}`)!.image!;
      const png = decodePng(image.encoded_image_string);
      // 8 rows of 2 views (16 px tiles, 2 px apart).
      expect([png.width, png.height]).toEqual([2 * 16 + 2, 8 * 16 + 7 * 2]);
      for (let row = 0; row < 8; row += 7) {
        for (let v = 0; v < 2; v++) {
          const want = viewPixels(first[v]!, row, 16, 'imagenet');
          for (let y = 0; y < 16; y++) {
            const at = ((row * 18 + y) * png.width + v * 18) * 3;
            expect(png.pixels.subarray(at, at + 48), `step ${step} row ${row} view ${v}`).toEqual(want.subarray(y * 48, y * 48 + 48));
          }
        }
      }
    }
    const text = (tag: string) => String(other.get(`${tag}@0`)!.tensor!.string_val![0]);
    expect(text(TAGS.config)).toContain('    log_every: 3');
    expect(JSON.parse(text(TAGS.runInfo).replace(/^ {4}/gm, ''))).toEqual(JSON.parse(await readFile(join(full, 'run.json'), 'utf8')));
  });

  it('a stop, a resume that stops at once, a killed process\'s leftovers, and a resume to the end: the uninterrupted run\'s scalars and images, no (tag, step) twice', async () => {
    const dir = await runDir();
    const controller = new AbortController();
    // Stopped at step 7, whose metrics line (and its events) the checkpoint covers: they must stay.
    await train(options(cfg(), dir, { logs: [new TensorBoardTrainingLog(dir)], signal: controller.signal, onStep: (s) => s === 7 && controller.abort() }));
    expect(scalarTable(await allEvents(join(dir, TB_DIR))).has(`${TAGS.loss}@7`)).toBe(true);
    // Resumed and stopped before its first step: it writes its texts at step 7, which the next resume writes again.
    const stopped = new AbortController();
    stopped.abort();
    expect((await train(options(cfg(), dir, { resume: true, logs: [new TensorBoardTrainingLog(dir)], signal: stopped.signal }))).interrupted).toBe('aborted');
    // What a process killed after step 7 may have left: the full run's later events, the last one cut short.
    const own = (await eventFiles(join(dir, TB_DIR))).at(-1)!;
    const later = (await readEventFile((await eventFiles(join(full, TB_DIR)))[0]!)).events.filter((e) => e.step > 7 && e.summary);
    expect(later.length).toBeGreaterThan(0);
    const bytes = Buffer.concat(later.map((e) => encodeEvent(e)));
    await writeFile(own, Buffer.concat([await readFile(own), bytes, bytes.subarray(0, 20)]));
    expect((await readEventFile(own)).problem).toMatch(/torn/);

    await train(options(cfg(), dir, { resume: true, logs: [new TensorBoardTrainingLog(dir)] }));
    const events = await allEvents(join(dir, TB_DIR));
    const table = scalarTable(events);
    expect(table).toEqual(expectedScalars(await metricsOf(dir)));
    expect(computedScalars(table)).toEqual(computedScalars(scalarTable(fullEvents)));
    const other = otherValues(events);
    const fullOther = otherValues(fullEvents);
    expect([...other.keys()].filter((k) => k.startsWith(TAGS.views))).toEqual([`${TAGS.views}@1`, `${TAGS.views}@5`]);
    for (const step of [1, 5]) {
      expect(other.get(`${TAGS.views}@${step}`)!.image!.encoded_image_string).toEqual(fullOther.get(`${TAGS.views}@${step}`)!.image!.encoded_image_string);
    }
    // The texts: the start's, and the resume's at step 7 once (with run.json listing its resumptions).
    expect([...other.keys()].filter((k) => k.startsWith('run/')).sort()).toEqual(['run/config@0', 'run/config@7', 'run/run.json@0', 'run/run.json@7']);
    expect(String(other.get('run/run.json@7')!.tensor!.string_val![0])).toContain('"resumes"');
    // TensorBoard's session-start markers: the run's, and the last resume's at the first step it
    // logged again (the stopped resume's marker went with the steps it had claimed).
    const files = await eventFiles(join(dir, TB_DIR));
    expect(files).toHaveLength(3);
    const starts = await Promise.all(files.map(async (f) => (await readEventFile(f)).events.filter((e) => e.session_log).map((e) => e.step)));
    expect(starts).toEqual([[1], [], [8]]);
  });
});
