/**
 * The recorded and optimised inference graph: what the passes fold and fuse, and its tfjs run
 * (the onednn plan's fallback) against the training graph, with random running statistics so that a
 * BatchNorm folding bug shows.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { tf } from '../../src/engine/tf.js';
import type { EncoderModel } from '../../src/model/build.js';
import { GraphRecorder, inferenceGraph, optimizeGraph, type ConvOp } from '../../src/model/inference_graph.js';
import { createTfjsGraphExtractor, TfjsInferenceGraph } from '../../src/model/inference_graph_tfjs.js';
import { relativeError, useCpuBackend } from '../helpers.js';
import { trainedLookingEncoder } from './tiny.js';

beforeAll(useCpuBackend);

const trainedLooking = (model: Record<string, unknown>, bitDepths?: number[]): EncoderModel => trainedLookingEncoder(model, bitDepths, 11);

const kinds = (ops: readonly { kind: string }[]) => ops.map((op) => op.kind);

describe('inferenceGraph', () => {
  it('folds every BatchNorm of a ResNet-18 and fuses its ReLUs and residual adds into the convs', () => {
    const enc = trainedLooking({ arch: 'resnet18', stem: 'cifar', width: 4 });
    const raw = inferenceGraph(enc.backbone, { optimize: false });
    expect(kinds(raw.ops).filter((k) => k === 'batchNorm')).toHaveLength(20);
    const g = inferenceGraph(enc.backbone);
    expect(kinds(g.ops)).toEqual([...Array<string>(20).fill('conv'), 'globalAvgPool']);
    const convs = g.ops.filter((op): op is ConvOp => op.kind === 'conv');
    expect(convs.filter((c) => c.relu)).toHaveLength(17);
    // Each block's add lands on the conv that runs last: conv2, or the downsample conv after it.
    expect(convs.filter((c) => c.sum !== undefined)).toHaveLength(8);
    // Values are renumbered in order: every op reads values made before it.
    g.ops.forEach((op, i) => expect(op.output).toBe(i + 1));
    enc.store.dispose();
  });

  it('keeps BiT\'s pre-activation GroupNorms, with their ReLUs fused, and adds the residual in conv3', () => {
    const enc = trainedLooking({ arch: 'bit-r50x1', stem: 'imagenet', width: 4 }, [1, 1, 1, 1]);
    const g = inferenceGraph(enc.backbone);
    const counts = kinds(g.ops).reduce<Record<string, number>>((m, k) => ({ ...m, [k]: (m[k] ?? 0) + 1 }), {});
    expect(counts).toEqual({ conv: 1 + 4 * 4, groupNorm: 4 * 3 + 1, maxPool: 1, globalAvgPool: 1 });
    expect(g.ops.filter((op) => op.kind === 'groupNorm').every((op) => op.kind === 'groupNorm' && op.relu)).toBe(true);
    expect(g.ops.filter((op) => op.kind === 'conv' && op.sum !== undefined)).toHaveLength(4);
    expect(g.ops.find((op) => op.kind === 'maxPool')).toMatchObject({ zeroPad: true, kernel: 3, stride: 2, pad: 1 });
    enc.store.dispose();
  });

  it('folds BatchNorm into the conv as w * s and beta + (b - mean) * s', () => {
    const rec = new GraphRecorder();
    const conv = rec.conv(GraphRecorder.input, { name: 'c', weight: new Float32Array([1, 2, 3, 4]), shape: [2, 2, 1, 1], stride: 1, pad: 0, bias: new Float32Array([1, -1]) });
    const bn = { name: 'bn', scale: new Float32Array([2, 3]), bias: new Float32Array([0.5, -0.5]), mean: new Float32Array([1, 2]), variance: new Float32Array([3, 8]), eps: 1 };
    rec.globalAvgPool(rec.relu(rec.batchNorm(conv, bn)));
    const [folded] = optimizeGraph(rec.ops) as [ConvOp];
    // s = gamma / sqrt(var + eps) = [1, 1]: the kernel is unchanged, the bias becomes beta + (b - mean).
    expect(Array.from(folded.weight)).toEqual([1, 2, 3, 4]);
    expect(Array.from(folded.bias)).toEqual([0.5, -3.5]);
    expect(folded.relu).toBe(true);
    // The recorded ops are left as they were.
    expect((rec.ops[0] as ConvOp).bias).toEqual(new Float32Array([1, -1]));
  });

  it('does not fuse an add into a conv whose other operand is read after the conv runs', () => {
    const rec = new GraphRecorder();
    const spec = { name: 'c', weight: new Float32Array([1]), shape: [1, 1, 1, 1] as const, stride: 1, pad: 0 };
    const a = rec.conv(GraphRecorder.input, spec);
    const b = rec.conv(a, spec);
    const sum = rec.add(b, a);
    rec.globalAvgPool(rec.add(sum, a));
    expect(kinds(optimizeGraph(rec.ops))).toEqual(['conv', 'conv', 'add', 'add', 'globalAvgPool']);
  });

  it('rejects a value it never made', () => {
    expect(() => new GraphRecorder().relu('v7')).toThrow(/unknown value 'v7'/);
  });
});

describe('TfjsInferenceGraph', () => {
  it.each([
    ['resnet18, CIFAR stem', { arch: 'resnet18', stem: 'cifar', width: 4 }, undefined, 12],
    ['resnet50, ImageNet stem', { arch: 'resnet50', stem: 'imagenet', width: 4 }, undefined, 33],
    ['BiT GroupNorm, BiT root', { arch: 'bit-r50x1', stem: 'imagenet', width: 4 }, [1, 1, 1, 1], 33],
    ['BiT BatchNorm variant', { arch: 'bit-r50x1', stem: 'cifar', width: 4, norm: 'batch' }, [2, 1, 1, 1], 12],
  ])('%s: the training graph\'s features (relative error < 1e-4), no tensors left behind', async (_name, model, depths, side) => {
    const enc = trainedLooking(model, depths);
    const x = tf.randomNormal([3, side, side, 3], 0, 1, 'float32', 4) as tf.Tensor4D;
    const expected = tf.tidy(() => enc.backbone.features(x, false).dataSync() as Float32Array);
    const runner = new TfjsInferenceGraph(inferenceGraph(enc.backbone));
    const before = tf.memory().numTensors;
    const got = runner.features(x);
    expect(tf.memory().numTensors).toBe(before + 1);
    expect(relativeError(got.dataSync() as Float32Array, expected)).toBeLessThan(1e-4);
    got.dispose();
    runner.dispose();
    const extractor = createTfjsGraphExtractor(enc.backbone, side);
    expect(relativeError(await extractor.run(x.dataSync() as Float32Array, 3), expected)).toBeLessThan(1e-4);
    extractor.dispose();
    await expect(extractor.run(x.dataSync() as Float32Array, 3)).rejects.toThrow(/disposed/);
    x.dispose();
    enc.store.dispose();
  });
});
