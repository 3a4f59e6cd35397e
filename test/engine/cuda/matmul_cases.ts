/** The matrix product shapes the CUDA engine's tests run (matmul.test.ts on float32, half_tensor_cores.test.ts on halves). */

export const TRANSPOSES = [
  [false, false],
  [true, false],
  [false, true],
  [true, true],
] as const;

export interface MatmulCase {
  name: string;
  batchA: number[];
  batchB: number[];
  m: number;
  k: number;
  n: number;
}

export const MATMUL_CASES: MatmulCase[] = [
  { name: 'rank 2, odd sizes', batchA: [], batchB: [], m: 7, k: 13, n: 5 },
  { name: 'rank 3, batch 3', batchA: [3], batchB: [3], m: 4, k: 6, n: 5 },
  { name: 'rank 4, batch [2, 3]', batchA: [2, 3], batchB: [2, 3], m: 5, k: 4, n: 3 },
  { name: "rank 3, a's batch of 1 broadcast", batchA: [1], batchB: [3], m: 4, k: 6, n: 5 },
  { name: "rank 3, b's batch of 1 broadcast", batchA: [4], batchB: [1], m: 3, k: 5, n: 6 },
  { name: 'rank 2 a against rank 4 b', batchA: [], batchB: [2, 3], m: 4, k: 6, n: 5 },
  { name: 'rank 4 a against rank 2 b (a projection head)', batchA: [2, 3], batchB: [], m: 6, k: 16, n: 8 },
  { name: 'a row vector and a column vector', batchA: [], batchB: [], m: 1, k: 9, n: 1 },
];

/** a's and b's shapes for op(a) [..., m, k] times op(b) [..., k, n]. */
export function matmulShapes(c: Pick<MatmulCase, 'batchA' | 'batchB' | 'm' | 'k' | 'n'>, tA: boolean, tB: boolean): [number[], number[]] {
  return [
    [...c.batchA, ...(tA ? [c.k, c.m] : [c.m, c.k])],
    [...c.batchB, ...(tB ? [c.n, c.k] : [c.k, c.n])],
  ];
}
