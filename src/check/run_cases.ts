/** Runs kernel cases on a target and a reference backend and compares every output and gradient. */
import { tf } from '../engine/tf.js';
import { Rng } from '../util/rng.js';
import { relativeError } from './compare.js';
import { kernelCases, makeInputs, type KernelCase, type Scale } from './kernel_cases.js';

type Values = Float32Array | Int32Array | Uint8Array;

export interface CaseResult {
  name: string;
  /** Worst relative error over outputs and gradients (0 for exact integer matches). */
  error: number;
  /** Largest absolute difference of any finite value. */
  maxError: number;
  tolerance: number;
  ok: boolean;
  /** What failed, when it did. */
  problem?: string;
  /** The inputs' shapes and dtypes. */
  shapes: number[][];
  dtypes: string[];
}

async function evaluate(backend: string, c: KernelCase, inputs: Values[]): Promise<Values[]> {
  await tf.setBackend(backend);
  const floatInputs = c.inputs.map((s, i) => ((s.dtype ?? 'float32') === 'float32' ? i : -1)).filter((i) => i >= 0);
  const results = tf.tidy(() => {
    const xs = inputs.map((v, i) => tf.tensor(v, c.inputs[i]!.shape, c.inputs[i]!.dtype ?? 'float32'));
    const outs = [c.op(...xs)].flat();
    if (!c.grad) return outs;
    const rng = new Rng(`cotangent ${c.name}`);
    const cotangents = outs.map((o) => (o.dtype === 'float32' ? tf.tensor(Float32Array.from({ length: o.size }, () => rng.normal()), o.shape) : null));
    const f = (...free: tf.Tensor[]) => {
      const args = xs.map((x, i) => (floatInputs.includes(i) ? free[floatInputs.indexOf(i)]! : x));
      const ys = [c.op(...args)].flat();
      return tf.addN(ys.flatMap((y, k) => (cotangents[k] ? [tf.sum(tf.mul(y, cotangents[k]!))] : []))) as tf.Scalar;
    };
    const grads = tf.grads(f)(floatInputs.map((i) => xs[i]!));
    return [...outs, ...grads];
  });
  const out = await Promise.all(results.map((t) => t.data() as Promise<Values>));
  tf.dispose(results);
  return out;
}

/**
 * Relative error over finite entries, and the largest absolute difference; non-finite ones (and
 * integers) must match exactly.
 */
export function compareValues(got: Values, ref: Values): { error: number; maxError: number; problem?: string } {
  if (got.length !== ref.length) return { error: Infinity, maxError: Infinity, problem: `${got.length} values, reference ${ref.length}` };
  if (!(ref instanceof Float32Array)) {
    for (let i = 0; i < ref.length; i++) if (got[i] !== ref[i]) return { error: Infinity, maxError: Math.abs(got[i]! - ref[i]!), problem: `[${i}] = ${got[i]}, reference ${ref[i]}` };
    return { error: 0, maxError: 0 };
  }
  const a: number[] = [];
  const b: number[] = [];
  for (let i = 0; i < ref.length; i++) {
    const r = ref[i]!;
    const g = got[i]!;
    if (Number.isFinite(r)) {
      a.push(g);
      b.push(r);
    } else if (!(Object.is(r, g) || (Number.isNaN(r) && Number.isNaN(g)))) {
      return { error: Infinity, maxError: Infinity, problem: `[${i}] = ${g}, reference ${r}` };
    }
  }
  let maxError = 0;
  for (let i = 0; i < a.length; i++) maxError = Math.max(maxError, Number.isNaN(a[i]!) ? Infinity : Math.abs(a[i]! - b[i]!));
  const error = b.every((v) => v === 0) ? Math.max(0, ...a.map(Math.abs)) : relativeError(a, b);
  return { error, maxError };
}

export async function runKernelCases(target: string, reference: string, scale: Scale, onCase?: (r: CaseResult) => void): Promise<CaseResult[]> {
  const results: CaseResult[] = [];
  for (const c of kernelCases(scale)) {
    const tolerance = c.tolerance ?? 1e-5;
    const inputs = makeInputs(c);
    const about = { shapes: c.inputs.map((s) => s.shape), dtypes: c.inputs.map((s) => s.dtype ?? 'float32') };
    let result: CaseResult;
    try {
      const ref = await evaluate(reference, c, inputs);
      const got = await evaluate(target, c, inputs);
      let error = 0;
      let maxError = 0;
      let problem: string | undefined;
      ref.forEach((r, i) => {
        const cmp = compareValues(got[i]!, r);
        error = Math.max(error, cmp.error);
        maxError = Math.max(maxError, cmp.maxError);
        if (cmp.problem && !problem) problem = `output ${i}: ${cmp.problem}`;
      });
      result = { name: c.name, error, maxError, tolerance, ok: !problem && error <= tolerance, problem, ...about };
    } catch (e) {
      // The whole message: a device error names the kernel, the shape, the algorithm and the status.
      result = { name: c.name, error: Infinity, maxError: Infinity, tolerance, ok: false, problem: ((e as Error).message ?? String(e)).replace(/\s*\n\s*/g, ' '), ...about };
    }
    onCase?.(result);
    results.push(result);
  }
  return results;
}
