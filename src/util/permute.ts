/**
 * Axis permutation of a row-major float32 array, in plain JS: what tf.transpose computes, for weights
 * moving between tfjs' layout (HWIO) and PyTorch's (OIHW). The tfjs cpu backend's transpose converts
 * every element's index to coordinates and back, which took ~300 ms for ResNet-18's weights each time
 * an inference plan was built or a checkpoint loaded; this is a tiled copy at a few ns per element.
 */
import { sizeOf } from './values.js';

/** `values` of `shape` with its axes reordered: output axis k is input axis perm[k]. */
export function permuteArray(values: Float32Array, shape: readonly number[], perm: readonly number[]): Float32Array {
  const rank = shape.length;
  if (perm.length !== rank || [...perm].sort((a, b) => a - b).some((p, i) => p !== i)) {
    throw new Error(`permuteArray: perm [${perm.join(', ')}] is not a permutation of ${rank} axes`);
  }
  const n = sizeOf(shape);
  if (values.length !== n) throw new Error(`permuteArray: ${values.length} values for shape [${shape.join(', ')}]`);
  // Axes of size 1 do not move any value; without them a 1x1 conv's [1, 1, I, O] is a plain 2D transpose.
  const kept = shape.map((_, a) => a).filter((a) => shape[a]! > 1);
  if (kept.length < 2 || perm.filter((p) => shape[p]! > 1).every((p, k) => p === kept[k])) return values.slice();
  return permuteSqueezed(values, kept.map((a) => shape[a]!), perm.filter((p) => shape[p]! > 1).map((p) => kept.indexOf(p)));
}

function permuteSqueezed(values: Float32Array, shape: readonly number[], perm: readonly number[]): Float32Array {
  const rank = shape.length;
  const out = new Float32Array(values.length);
  const inStrides = strides(shape);
  const outShape = perm.map((p) => shape[p]!);
  const outStrides = strides(outShape);
  const last = rank - 1;
  // The input's contiguous axis, where the output holds it; and the input stride of the output's contiguous axis.
  const across = perm.indexOf(last);
  const alongStride = inStrides[perm[last]!]!;
  // Every other output axis is walked by an odometer; these two form a 2D transpose done in tiles, so
  // both the reads and the writes stay within a few cache lines (a row-by-row walk read one float per
  // line for a 1x1 conv's [I, O] -> [O, I]).
  const outer = outShape.map((_, k) => k).filter((k) => k !== last && k !== across);
  const rows = across === last ? 1 : outShape[across]!;
  const rowOut = across === last ? 0 : outStrides[across]!;
  const cols = outShape[last]!;
  const index = new Array<number>(rank).fill(0);
  let inBase = 0;
  let outBase = 0;
  for (;;) {
    for (let r0 = 0; r0 < rows; r0 += TILE) {
      const r1 = Math.min(rows, r0 + TILE);
      for (let c0 = 0; c0 < cols; c0 += TILE) {
        const c1 = Math.min(cols, c0 + TILE);
        for (let r = r0; r < r1; r++) {
          const o = outBase + r * rowOut;
          for (let c = c0, at = inBase + r + c * alongStride; c < c1; c++, at += alongStride) out[o + c] = values[at]!;
        }
      }
    }
    let a = outer.length - 1;
    for (; a >= 0; a--) {
      const k = outer[a]!;
      inBase += inStrides[perm[k]!]!;
      outBase += outStrides[k]!;
      if (++index[k]! < outShape[k]!) break;
      inBase -= inStrides[perm[k]!]! * outShape[k]!;
      outBase -= outStrides[k]! * outShape[k]!;
      index[k] = 0;
    }
    if (a < 0) return out;
  }
}

const TILE = 16;

function strides(shape: readonly number[]): number[] {
  const out = new Array<number>(shape.length);
  for (let a = shape.length - 1, s = 1; a >= 0; a--) {
    out[a] = s;
    s *= shape[a]!;
  }
  return out;
}
