/**
 * What the Winograd tests share: which convs winogradPays (native/onednn/common.h) picks, the
 * implementations oneDNN chose for one conv's three passes, and whether this CPU has oneDNN's
 * Winograd kernel (avx512_core).
 */
import { existsSync, readFileSync } from 'node:fs';
import { tf } from '../../src/engine/tf.js';
import { convParams } from '../../src/engine/conv_params.js';
import type { NativeAddon } from '../../src/engine/onednn/native.js';

/** oneDNN's avx512_core, the ISA of its Winograd kernel (jit_wino_4x3). */
export const HAS_AVX512 =
  existsSync('/proc/cpuinfo') && ['avx512f', 'avx512bw', 'avx512vl', 'avx512dq'].every((f) => new RegExp(`\\b${f}\\b`).test(readFileSync('/proc/cpuinfo', 'utf8')));

/** 3x3 stride-1 convs [x, filter] with 8x8 outputs or larger, 16+ input channels and 64+ tiles of 4x4. */
export const WINOGRAD_SHAPES: Array<[number[], number[]]> = [
  [[4, 16, 16, 32], [3, 3, 32, 32]],
  [[8, 9, 10, 16], [3, 3, 16, 24]], // 3x3 tiles per image, the last ones partial
];

/** Convs it leaves direct: 4x4 outputs, 63 tiles, a 3-channel stem, stride 2. */
export const DIRECT_SHAPES: Array<[number[], number[], number]> = [
  [[64, 4, 4, 64], [3, 3, 64, 64], 1],
  [[7, 9, 10, 16], [3, 3, 16, 24], 1],
  [[16, 32, 32, 3], [3, 3, 3, 16], 1],
  [[16, 32, 32, 32], [3, 3, 32, 32], 2],
];

/** "fwd=... bwd_data=... bwd_weights=..." with the implementation oneDNN picked for each pass. */
export function convImplementations(addon: NativeAddon, x: number[], f: number[], stride = 1): string {
  const info = tf.backend_util.computeConv2DInfo(x as [number, number, number, number], f as [number, number, number, number], stride, 1, 1, undefined, false, 'channelsLast');
  return addon.convImpl(convParams(info, { relu: false, bias: false })!);
}
