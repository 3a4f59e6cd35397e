import { describe, expect, it } from 'vitest';
import { ConfigSchema } from '../../src/config/schema.js';
import { augmentBatch } from '../../src/data/augment.js';
import { makeSynthetic } from '../../src/data/synthetic.js';
import { decodePng } from '../../src/report/tile_sheet.js';
import { viewGridPng } from '../../src/report/view_grid.js';

describe('viewGridPng', () => {
  it('lays the first rows of a batch out by view, de-normalised, 2 px apart', () => {
    const ds = makeSynthetic({ size: 8, count: 12, seed: 1, split: 'train' });
    const augment = ConfigSchema.parse({}).data.augment;
    const views = augmentBatch(ds, Int32Array.from({ length: 12 }, (_, i) => i), 8, augment, 'bit', { seed: 2, epoch: 0 }, 3);
    const png = decodePng(viewGridPng(views, 8, 'bit', 5));
    expect([png.width, png.height]).toEqual([3 * 8 + 2 * 2, 5 * 8 + 4 * 2]);
    for (let r = 0; r < 5; r++) {
      for (let v = 0; v < 3; v++) {
        for (let i = 0; i < 8 * 8 * 3; i++) {
          const [y, x, c] = [Math.floor(i / 24), Math.floor(i / 3) % 8, i % 3];
          const expected = Math.max(0, Math.min(255, Math.round((views[v]![r * 192 + i]! + 1) * 127.5)));
          expect(png.pixels[((r * 10 + y) * png.width + v * 10 + x) * 3 + c]).toBe(expected);
        }
      }
    }
    // The gap between tiles stays white.
    expect(Array.from(png.pixels.subarray((0 * png.width + 8) * 3, (0 * png.width + 10) * 3))).toEqual([255, 255, 255, 255, 255, 255]);
    expect(() => viewGridPng([new Float32Array(7)], 8, 'bit')).toThrow(/not \[B, 8, 8, 3\]/);
  });
});
