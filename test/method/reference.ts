/** Float64 references of the loss maths, shared by the SimSiam and SimTriplet loss tests. */
import { tf } from '../../src/engine/tf.js';
import { Rng } from '../../src/util/rng.js';

export type Mat = number[][];

export const randMat = (n: number, d: number, rng: Rng): Mat => Array.from({ length: n }, () => Array.from({ length: d }, () => rng.normal()));
export const t2 = (m: Mat): tf.Tensor2D => tf.tensor2d(m);
export const dot = (a: number[], b: number[]): number => a.reduce((s, v, i) => s + v * b[i]!, 0);
export const norm = (a: number[]): number => Math.sqrt(dot(a, a));

/** The documented semantics: dot / max(|a||b|, 1e-8). */
export function refCos(a: number[], b: number[]): number {
  return dot(a, b) / Math.max(norm(a) * norm(b), 1e-8);
}

/** D(P, Z) = -mean_i cos(p_i, z_i). */
export const refD = (P: Mat, Z: Mat): number => -P.reduce((s, p, i) => s + refCos(p, Z[i]!), 0) / P.length;

/** d D(P, Z) / dP. */
export function refDGrad(P: Mat, Z: Mat): Mat {
  return P.map((p, i) => {
    const z = Z[i]!;
    const np = norm(p);
    const nz = norm(z);
    const c = dot(p, z) / (np * nz);
    return p.map((pk, k) => -(z[k]! / (np * nz) - (c * pk) / (np * np)) / P.length);
  });
}
