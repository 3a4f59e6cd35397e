/** The shape arithmetic of tfjs' BatchMatMul, shared by the native engines (onednn, cuda). */
import { tf } from './tf.js';
import { sizeOf } from '../util/values.js';

export interface MatmulShape {
  batchA: number;
  batchB: number;
  m: number;
  n: number;
  k: number;
  outShape: number[];
}

/**
 * A BatchMatMul as a rank-3 product with flattened batch dims, as the native engines' GEMMs take it.
 * Only broadcasts that flatten cleanly (equal batch shapes, or one side without batch) are handled;
 * others go to the cpu kernel.
 */
export function matmulShape(aShape: readonly number[], bShape: readonly number[], transposeA: boolean, transposeB: boolean): MatmulShape | null {
  const ra = aShape.length;
  const rb = bShape.length;
  if (ra < 2 || rb < 2) return null;
  const m = transposeA ? aShape[ra - 1]! : aShape[ra - 2]!;
  const k = transposeA ? aShape[ra - 2]! : aShape[ra - 1]!;
  const kb = transposeB ? bShape[rb - 1]! : bShape[rb - 2]!;
  const n = transposeB ? bShape[rb - 2]! : bShape[rb - 1]!;
  if (k !== kb) return null;
  let outer: number[];
  try {
    outer = tf.broadcast_util.assertAndGetBroadcastShape(aShape.slice(0, -2), bShape.slice(0, -2));
  } catch {
    return null;
  }
  const batchA = sizeOf(aShape.slice(0, -2));
  const batchB = sizeOf(bShape.slice(0, -2));
  const batch = sizeOf(outer);
  if ((batchA !== batch && batchA !== 1) || (batchB !== batch && batchB !== 1)) return null;
  return { batchA, batchB, m, n, k, outShape: [...outer, m, n] };
}
