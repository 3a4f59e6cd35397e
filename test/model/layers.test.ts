/**
 * BatchNorm in training mode against a plain-tfjs reference (batch statistics, tf.batchNorm, PyTorch's
 * running-statistics update), on the cpu backend and, where the addon is built, on onednn, whose
 * native batch-norm kernels must not change the layer's behaviour.
 */
import { describe, expect, it } from 'vitest';
import { tf } from '../../src/engine/tf.js';
import { loadOnednn } from '../../src/engine/onednn/loader.js';
import { BatchNorm } from '../../src/model/layers.js';
import { nativeRuns } from '../../src/engine/kernel_stats.js';
import { BATCH_NORM_RELU_TRAIN, BATCH_NORM_RELU_TRAIN_GRAD } from '../../src/engine/custom_kernels.js';
import { ParamStore } from '../../src/model/params.js';
import { Rng } from '../../src/util/rng.js';
import { relativeError, useCpuBackend } from '../helpers.js';

const onednn = await loadOnednn();
if (!onednn.ok) console.warn(`BatchNorm on onednn skipped: ${onednn.reason} (${onednn.hint})`);
const backends = onednn.ok ? (['cpu', 'onednn'] as const) : (['cpu'] as const);

function randomTensor(shape: number[], seed: string, scale = 1, offset = 0): tf.Tensor {
  const rng = new Rng('layers-test', seed);
  const n = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(Float32Array.from({ length: n }, () => offset + scale * rng.normal()), shape);
}

/** Training-mode BN written out in standard ops, with state kept in plain tensors. */
class ReferenceBatchNorm {
  runningMean: tf.Tensor;
  runningVar: tf.Tensor;
  constructor(
    channels: number,
    private readonly eps = 1e-5,
    private readonly momentum = 0.1,
  ) {
    this.runningMean = tf.zeros([channels]);
    this.runningVar = tf.ones([channels]);
  }
  apply(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor): tf.Tensor {
    const axes = x.shape.slice(0, -1).map((_, i) => i);
    const mean = tf.mean(x, axes);
    const variance = tf.mean(tf.square(tf.sub(x, mean)), axes);
    const n = x.size / x.shape[x.rank - 1]!;
    const m = this.momentum;
    const [rm, rv] = [this.runningMean, this.runningVar];
    this.runningMean = tf.keep(tf.add(tf.mul(rm, 1 - m), tf.mul(mean, m)));
    this.runningVar = tf.keep(tf.add(tf.mul(rv, 1 - m), tf.mul(tf.mul(variance, n / (n - 1)), m)));
    tf.dispose([rm, rv]);
    return tf.batchNorm(x, mean, variance, beta, gamma, this.eps);
  }
}

describe('BatchNorm training mode matches a plain-tfjs reference', () => {
  for (const backend of backends) {
    for (const shape of [[4, 5, 5, 3], [6, 7]]) {
      it(`${backend}: output, gradients and running stats over two steps, shape [${shape.join(',')}]`, async () => {
        if (backend === 'cpu') await useCpuBackend();
        else await tf.setBackend('onednn');
        const channels = shape[shape.length - 1]!;
        const store = new ParamStore();
        const bn = new BatchNorm({ store, rng: new Rng(1, 'init') }, `bn-${backend}-${shape.length}`, channels);
        bn.gamma!.assign(tf.tidy(() => tf.add(randomTensor([channels], 'gamma', 0.5), 1)));
        bn.beta!.assign(tf.tidy(() => randomTensor([channels], 'beta', 0.5)));
        const ref = new ReferenceBatchNorm(channels);
        for (let step = 0; step < 2; step++) {
          tf.tidy(() => {
            const x = randomTensor(shape, `x${step}`, 2, 3);
            const w = randomTensor(shape, `w${step}`);
            const loss = (y: tf.Tensor) => tf.sum(tf.mul(y, w)) as tf.Scalar;
            const dxGot = tf.grad((a: tf.Tensor) => loss(bn.apply(a, true)))(x);
            const layer = tf.variableGrads(() => loss(bn.apply(x, true)), [bn.gamma!, bn.beta!]);
            const yGot = bn.apply(x, true);
            // Three applications above advanced the layer's running stats three times; do the same.
            ref.apply(x, bn.gamma!, bn.beta!);
            ref.apply(x, bn.gamma!, bn.beta!);
            const yWant = ref.apply(x, bn.gamma!, bn.beta!);
            const [dxWant, dgWant, dbWant] = tf.grads((a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => {
              const axes = a.shape.slice(0, -1).map((_, i) => i);
              const mean = tf.mean(a, axes);
              const variance = tf.mean(tf.square(tf.sub(a, mean)), axes);
              return loss(tf.batchNorm(a, mean, variance, b, g, 1e-5));
            })([x, bn.gamma!, bn.beta!]);
            expect(relativeError(yGot.dataSync(), yWant.dataSync()), 'y').toBeLessThan(1e-5);
            expect(relativeError(dxGot.dataSync(), dxWant!.dataSync()), 'dx').toBeLessThan(1e-4);
            expect(relativeError(layer.grads[bn.gamma!.name]!.dataSync(), dgWant!.dataSync()), 'dgamma').toBeLessThan(1e-4);
            expect(relativeError(layer.grads[bn.beta!.name]!.dataSync(), dbWant!.dataSync()), 'dbeta').toBeLessThan(1e-4);
            expect(relativeError(bn.runningMean.dataSync(), ref.runningMean.dataSync()), 'running mean').toBeLessThan(1e-5);
            expect(relativeError(bn.runningVar.dataSync(), ref.runningVar.dataSync()), 'running var').toBeLessThan(1e-5);
          });
        }
        // Inputs have mean 3 and variance 4: after six momentum-0.1 updates the stats moved toward them.
        const rm = bn.runningMean.dataSync();
        expect(Array.from(rm).every((v) => v > 1 && v < 3)).toBe(true);
        tf.dispose([ref.runningMean, ref.runningVar]);
        store.dispose();
      });
    }
  }

  it('inference mode uses the running statistics', async () => {
    await useCpuBackend();
    const store = new ParamStore();
    const bn = new BatchNorm({ store, rng: new Rng(1, 'init') }, 'bn-eval', 3);
    tf.tidy(() => {
      bn.runningMean.assign(tf.tensor1d([1, 2, 3]));
      bn.runningVar.assign(tf.tensor1d([4, 1, 0.25]));
      const y = bn.apply(tf.tensor2d([[1, 2, 3], [3, 3, 3.5]]), false);
      const want = [0, 0, 0, 2 / Math.sqrt(4 + 1e-5), 1 / Math.sqrt(1 + 1e-5), 0.5 / Math.sqrt(0.25 + 1e-5)];
      expect(relativeError(y.dataSync(), want)).toBeLessThan(1e-6);
      // Inference leaves the running statistics alone.
      expect(Array.from(bn.runningMean.dataSync())).toEqual([1, 2, 3]);
    });
    store.dispose();
  });
});

describe('BatchNorm.applyRelu is relu(apply) (one fused kernel each way on onednn)', () => {
  for (const backend of backends) {
    for (const precision of ['fp32', 'mixed16'] as const) {
      it(`${backend} ${precision}: output, gradients and running stats equal relu(apply) on a twin layer`, async () => {
        if (backend === 'cpu') await useCpuBackend();
        else await tf.setBackend('onednn');
        const shape = [4, 5, 5, 6];
        const make = (name: string) => {
          const store = new ParamStore();
          const bn = new BatchNorm({ store, rng: new Rng(1, 'init'), precision }, name, 6);
          bn.gamma!.assign(tf.tidy(() => tf.add(randomTensor([6], 'gamma', 0.5), 1)));
          bn.beta!.assign(tf.tidy(() => randomTensor([6], 'beta', 0.5)));
          return { store, bn };
        };
        const fused = make(`fused-${backend}-${precision}`);
        const plain = make(`plain-${backend}-${precision}`);
        const before = [nativeRuns.get(BATCH_NORM_RELU_TRAIN) ?? 0, nativeRuns.get(BATCH_NORM_RELU_TRAIN_GRAD) ?? 0];
        tf.tidy(() => {
          const x = randomTensor(shape, 'relu-x', 2, 0.5);
          const w = randomTensor(shape, 'relu-w');
          const run = (f: (a: tf.Tensor) => tf.Tensor, bn: BatchNorm) => {
            const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(f(x), w)) as tf.Scalar, [bn.gamma!, bn.beta!]);
            const dx = tf.grad((a: tf.Tensor) => tf.sum(tf.mul(f(a), w)))(x);
            return [value, dx, grads[bn.gamma!.name]!, grads[bn.beta!.name]!, f(x)].map((t) => t.dataSync());
          };
          const got = run((a) => fused.bn.applyRelu(a, true), fused.bn);
          const want = run((a) => tf.relu(plain.bn.apply(a, true)), plain.bn);
          got.forEach((g, i) => expect(relativeError(g, want[i]!), `output ${i}`).toBeLessThan(1e-5));
          expect(got[4]!.some((v) => v === 0) && got[4]!.some((v) => v > 0)).toBe(true);
          expect(relativeError(fused.bn.runningMean.dataSync(), plain.bn.runningMean.dataSync())).toBeLessThan(1e-6);
          // Inference mode: the running statistics, then the ReLU.
          expect(relativeError(fused.bn.applyRelu(x, false).dataSync(), tf.relu(plain.bn.apply(x, false)).dataSync())).toBeLessThan(1e-6);
        });
        const runs = [(nativeRuns.get(BATCH_NORM_RELU_TRAIN) ?? 0) - before[0]!, (nativeRuns.get(BATCH_NORM_RELU_TRAIN_GRAD) ?? 0) - before[1]!];
        // Three training applications (two of them differentiated); none on cpu, which has no fused kernel.
        expect(runs).toEqual(backend === 'onednn' ? [3, 2] : [0, 0]);
        fused.store.dispose();
        plain.store.dispose();
      });
    }
  }
});
