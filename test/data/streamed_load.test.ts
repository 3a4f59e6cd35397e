import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DataSchema } from '../../src/config/schema.js';
import type { ImageDataset } from '../../src/data/dataset.js';
import { loadDataSplits, streamDataSplits } from '../../src/data/index.js';
import { SettledPrefix, StreamedLoads } from '../../src/data/streamed_load.js';
import { writeFlatJpegFolder } from './fixtures.js';

/** Whether `p` has settled after the pending callbacks ran. */
async function settledYet(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  p.then(
    () => (done = true),
    () => (done = true),
  );
  await new Promise((r) => setImmediate(r));
  return done;
}

describe('SettledPrefix', () => {
  it('resolves a wait once every item before its end has settled, in whatever order they settle', async () => {
    const p = new SettledPrefix(5);
    const first3 = p.whenSettled(3);
    const all = p.whenSettled(99);
    p.settle(2);
    p.settle(0);
    expect(await settledYet(first3)).toBe(false);
    p.settle(1);
    expect(await settledYet(first3)).toBe(true);
    expect(p.ready).toBe(3);
    p.settle(4);
    expect(await settledYet(all)).toBe(false);
    p.settle(3);
    expect(await settledYet(all)).toBe(true);
    await expect(p.whenSettled(0)).resolves.toBeUndefined();
  });

  it('a failure rejects the waits in progress and later ones, but not a prefix already there', async () => {
    const p = new SettledPrefix(3);
    p.settle(0);
    const waiting = p.whenSettled(2);
    p.fail(new Error('disk gone'));
    await expect(waiting).rejects.toThrow('disk gone');
    await expect(p.whenSettled(3)).rejects.toThrow('disk gone');
    await expect(p.whenSettled(1)).resolves.toBeUndefined();
  });
});

describe('StreamedLoads', () => {
  it('runs loads one after another, and a failed load fails the progress of every load after it', async () => {
    const loads = new StreamedLoads();
    const order: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const [a, b, c] = [new SettledPrefix(1), new SettledPrefix(1), new SettledPrefix(1)];
    loads.start(a, async () => {
      order.push('a starts');
      await gate;
      order.push('a ends');
      throw new Error('a broke');
    });
    loads.start(b, async () => void order.push('b starts'));
    loads.start(c, async () => void order.push('c starts'));
    await new Promise((r) => setImmediate(r));
    expect(order).toEqual(['a starts']);
    release();
    await expect(loads.settled()).rejects.toThrow('a broke');
    await expect(b.whenSettled(1)).rejects.toThrow('a broke');
    await expect(c.whenSettled(1)).rejects.toThrow('a broke');
    expect(order).toEqual(['a starts', 'a ends']);
  });
});

const pixelsOf = (ds: ImageDataset) => Buffer.concat(Array.from({ length: ds.size }, (_, i) => ds.image(i)));

describe('streamDataSplits', () => {
  it('hands out the listed splits before decoding ends; once settled they are the same objects, with loadDataSplits\' pixels', async () => {
    const root = await writeFlatJpegFolder(24);
    const cfg = DataSchema.parse({ kind: 'folder', root, image_size: 8, cache_dir: join(root, '..', 'cache-a'), labelled: { test_fraction: 0.25 } });
    const { listed, settled } = await streamDataSplits(cfg, 3);
    const train = listed.probeTrain!;
    expect(train.whenLoaded).toBeTypeOf('function');
    expect([train.size, listed.test.size]).toEqual([18, 6]);
    await train.whenLoaded!(train.size);
    await listed.test.whenLoaded!(listed.test.size);
    const data = await settled;
    expect(data).toBe(listed);
    const canonical = await loadDataSplits(cfg, 3);
    expect(data.description).toBe(canonical.description);
    expect(data.probeTrain!.sources).toEqual(canonical.probeTrain!.sources);
    expect(pixelsOf(data.probeTrain!).equals(pixelsOf(canonical.probeTrain!))).toBe(true);
    expect(pixelsOf(data.test).equals(pixelsOf(canonical.test))).toBe(true);
  });

  it('with a bad image, settles to what loadDataSplits gives (skip: the image left out; error: its error)', async () => {
    const root = await writeFlatJpegFolder(16, [5]);
    const base = { kind: 'folder', root, image_size: 8, labelled: { test_fraction: 0.25 } };
    const skip = DataSchema.parse({ ...base, on_bad_image: 'skip', cache_dir: join(root, '..', 'cache-b') });
    const { listed, settled } = await streamDataSplits(skip, 1);
    expect(listed.probeTrain!.size + listed.test.size).toBe(16);
    const data = await settled;
    expect(data).not.toBe(listed);
    const canonical = await loadDataSplits(skip, 1);
    expect(data.probeTrain!.size + data.test.size).toBe(15);
    expect(data.description).toBe(canonical.description);
    expect(data.probeTrain!.sources).toEqual(canonical.probeTrain!.sources);
    expect(data.test.sources).toEqual(canonical.test.sources);
    expect([...data.probeTrain!.sources!, ...data.test.sources!].some((s) => s.endsWith('img005.jpg'))).toBe(false);

    const error = DataSchema.parse({ ...base, cache_dir: join(root, '..', 'cache-c') });
    const streamed = await streamDataSplits(error, 1);
    const expected = await loadDataSplits(error, 1).catch((e: Error) => e.message);
    await expect(streamed.settled).rejects.toThrow(expected as string);
    expect(expected).toMatch(/img005\.jpg/);
  });
});
