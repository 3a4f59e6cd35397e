/**
 * Winograd in the onednn training convs: which convs take it (the values are checked against the cpu
 * backend by onednn.test.ts's Winograd cases), and that all three passes of such a conv run it.
 */
import { describe, expect, it } from 'vitest';
import { loadNative } from '../../src/engine/onednn/native.js';
import { convImplementations, DIRECT_SHAPES, HAS_AVX512, WINOGRAD_SHAPES } from './onednn_winograd_cases.js';

const native = loadNative();
const addon = native.ok ? native.addon : undefined;

describe.skipIf(!addon)('onednn training convs: Winograd where it pays', () => {
  it.each(WINOGRAD_SHAPES)('x %j, filter %j: forward, backward data and backward weights all run jit_wino_4x3 on AVX-512', (x, f) => {
    const impl = convImplementations(addon!, x, f);
    expect(impl.match(/wino/g)?.length ?? 0).toBe(HAS_AVX512 ? 3 : 0);
  });

  it.each(DIRECT_SHAPES)('x %j, filter %j, stride %i: direct', (x, f, stride) => {
    expect(convImplementations(addon!, x, f, stride)).not.toMatch(/wino/);
  });
});
