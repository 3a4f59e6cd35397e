/**
 * The linear probe fitted on one engine against the same probe fitted on the cpu backend (its
 * float64 JavaScript trainer), on the same features: separable Gaussian clusters with overlap, so
 * the probe is neither trivial nor hopeless. The probe's SGD sums in a different order on each
 * engine, so the weights differ by float32 rounding growing over the epochs; what must agree is what
 * the probe is for: its test accuracy, to within the few test items that lie on a decision boundary.
 */
import { ConfigSchema } from '../config/schema.js';
import { tf } from '../engine/tf.js';
import { trainLinearProbe } from '../eval/linear_probe.js';
import { Rng } from '../util/rng.js';
import { relativeError } from './compare.js';

const DIM = 64;
const CLASSES = 10;

function clusters(n: number, seed: string): { x: Float32Array; y: Int32Array } {
  const centres = new Rng('probe-parity centres');
  const means = Array.from({ length: CLASSES }, () => Float32Array.from({ length: DIM }, () => centres.normal()));
  const rng = new Rng(seed);
  const x = new Float32Array(n * DIM);
  const y = Int32Array.from({ length: n }, (_, i) => i % CLASSES);
  for (let i = 0; i < n; i++) for (let d = 0; d < DIM; d++) x[i * DIM + d] = means[y[i]!]![d]! + 4 * rng.normal();
  return { x, y };
}

export interface ProbeComparison {
  accuracy: number;
  referenceAccuracy: number;
  /** ||W - W_ref|| / ||W_ref|| of the trained weights. */
  weightsError: number;
  testItems: number;
}

export async function compareProbes(target: string, epochs: number): Promise<ProbeComparison> {
  const train = clusters(2000, 'probe-parity train');
  const test = clusters(500, 'probe-parity test');
  const cfg = { ...ConfigSchema.parse({}).eval.linear, epochs };
  const fit = async (backend: string, kernel: 'js' | 'tfjs') => {
    await tf.setBackend(backend);
    const probe = trainLinearProbe(train.x, train.y, DIM, CLASSES, cfg, 0, { kernel });
    const predicted = probe.predict(test.x);
    const accuracy = predicted.reduce((a, p, i) => a + (p === test.y[i] ? 1 : 0), 0) / test.y.length;
    return { accuracy, weights: probe.weights };
  };
  const ref = await fit('cpu', 'js');
  const got = await fit(target, 'tfjs');
  return { accuracy: got.accuracy, referenceAccuracy: ref.accuracy, weightsError: relativeError(got.weights, ref.weights), testItems: test.y.length };
}
