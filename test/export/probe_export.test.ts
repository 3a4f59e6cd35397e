/**
 * `simtrip export --with-probe`: the ONNX model outputs `simtrip predict`'s class probabilities in
 * onnxruntime (split probe and logo ensemble), with the class names in its metadata; a torchvision or
 * timm state dict carries the probe as the model's classifier with the standardisation folded in, so
 * the pooled features through fc give predict's probabilities. Probes of other weights and ensembles
 * for a single fc layer are refused. Strict loading in real torch: test/fixtures/torch/generate.py.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { beforeAll, describe, expect, it } from 'vitest';
import { ModelSchema } from '../../src/config/schema.js';
import { stateDictTarget } from '../../src/export/state_dict_export.js';
import { listImages } from '../../src/io/image.js';
import { readNpy } from '../../src/io/npy.js';
import { readSafetensors } from '../../src/io/safetensors.js';
import type { EvalRecord } from '../../src/eval/records.js';
import { resetExitCodeAfterEach, runCli } from '../cli/run_cli.js';
import { CLASSES, evalProbe, HOLDOUT, probeRun, probeRunWithProbes, readPredictions, writeCheckpoint, type ProbeRun } from '../eval/probe_run.js';
import { useCpuBackend } from '../helpers.js';
import { tempDir } from '../io/tmp.js';
import { preprocess, runOnnx } from './onnx_run.js';

beforeAll(useCpuBackend);
resetExitCodeAfterEach();

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => Math.max(...Array.from(a, (v, i) => Math.abs(v - b[i]!)));

/** predict's probabilities on the held-out group's images (blue, then red), [n x classes] row-major, and the files. */
async function predicted(run: ProbeRun, record: EvalRecord, checkpoint = run.dir): Promise<{ files: string[]; p: number[] }> {
  const files: string[] = [];
  const p: number[] = [];
  for (const cls of CLASSES) {
    const out = join(tempDir(), `${cls}.csv`);
    const images = join(run.root, HOLDOUT, cls);
    const r = await runCli('predict', '--checkpoint', checkpoint, '--run-dir', run.dir, '--probe', record.id, '--images', images, '--out', out);
    expect(r.stderr).not.toMatch(/simtrip: /);
    files.push(...(await listImages(images)));
    p.push(...readPredictions(out).rows.flatMap((row) => row.p));
  }
  return { files, p };
}

/** Pooled features of `files` as simtrip embed writes them. */
async function embedded(run: ProbeRun, files: string[]): Promise<Float32Array> {
  const parts: Float32Array[] = [];
  for (const cls of CLASSES) {
    const npy = join(tempDir(), `${cls}.npy`);
    expect((await runCli('embed', '--config', run.yaml, '--checkpoint', run.dir, '--images', join(run.root, HOLDOUT, cls), '--out', npy)).code).toBe(0);
    parts.push((await readNpy(npy)).toFloat32());
  }
  const x = new Float32Array(parts.reduce((n, a) => n + a.length, 0));
  parts.reduce((at, a) => (x.set(a, at), at + a.length), 0);
  expect(x.length % files.length).toBe(0);
  return x;
}

/** softmax(x W^T + b) per row, in float64: what a PyTorch classifier with this fc computes. */
function classify(x: Float32Array, weight: Float32Array, bias: Float32Array): number[] {
  const k = bias.length;
  const d = weight.length / k;
  const out: number[] = [];
  for (let i = 0; i < x.length / d; i++) {
    const z = Array.from(bias, (b, c) => b + weight.subarray(c * d, (c + 1) * d).reduce((s, w, j) => s + w * x[i * d + j]!, 0));
    const m = Math.max(...z);
    const e = z.map((v) => Math.exp(v - m));
    const sum = e.reduce((a, b) => a + b, 0);
    out.push(...e.map((v) => v / sum));
  }
  return out;
}

describe('simtrip export --with-probe', () => {
  let run: ProbeRun;
  let split: EvalRecord;
  let logo: EvalRecord;
  beforeAll(async () => {
    ({ run, split, logo } = await probeRunWithProbes());
  }, 120_000);

  it.each(['split', 'logo'] as const)("onnx, %s probe: onnxruntime gives predict's probabilities within 1e-4, class names in the metadata", async (protocol) => {
    const record = protocol === 'split' ? split : logo;
    const out = join(tempDir(), `${protocol}.onnx`);
    const r = await runCli('export', '--checkpoint', run.dir, '--format', 'onnx', '--with-probe', record.id, '--out', out);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^wrote .*\.onnx: ONNX \(opset 17\) of the resnet18 encoder and probe from checkpoint /m);
    expect(r.stdout).toContain(`input 'images' [batch, 3, 16, 16] float32 NCHW RGB, output 'probabilities' [batch, 2]: the probabilities of blue, red`);
    if (protocol === 'logo') expect(r.stdout).toContain('the mean over the folds');

    const session = await ort.InferenceSession.create(out);
    expect(session.outputNames).toEqual(['probabilities']);
    await session.release();
    const { onnx } = (await import('onnx-proto')).default;
    const props = Object.fromEntries(onnx.ModelProto.decode(readFileSync(out)).metadataProps.map((p) => [p.key, p.value]));
    expect(JSON.parse(props.class_names!)).toEqual(CLASSES);
    expect(JSON.parse(props['simtrip.probe']!)).toMatchObject({ record_id: record.id, classes: CLASSES, protocol, label_fraction: 1 });

    const { files, p } = await predicted(run, record);
    const got = await runOnnx(out, await preprocess(files, 16, 'imagenet'), [files.length, 3, 16, 16], 'probabilities');
    expect(got.length).toBe(p.length);
    expect(maxDiff(got, p)).toBeLessThan(1e-4);
    if (protocol === 'logo') {
      // Rounded to float16 like eval's and predict's features (Cast there and back): without the
      // rounding the probabilities differ by about 8e-5 here, with it by about 5e-8.
      expect(onnx.ModelProto.decode(readFileSync(out)).graph!.node.filter((n) => n.opType === 'Cast')).toHaveLength(2);
      expect(maxDiff(got, p)).toBeLessThan(1e-5);
    }
  });

  it('torchvision: fc.weight / fc.bias with the standardisation folded in give predict\'s probabilities; the file still loads as the encoder', async () => {
    const out = join(tempDir(), 'tv-probe.safetensors');
    const r = await runCli('export', '--checkpoint', run.dir, '--format', 'torchvision', '--with-probe', split.id, '--out', out);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/with the probe linear-100pct-step30-[0-9a-f]{10} as its classifier/);
    expect(r.stdout).toMatch(/^probe: linear 100%, split, classes blue, red; fc\.weight \/ fc\.bias hold it with the feature standardisation folded in, so softmax\(model\(x\)\) gives simtrip predict's probabilities$/m);
    const file = await readSafetensors(out);
    expect([file.info('fc.weight'), file.info('fc.bias')]).toEqual([{ dtype: 'F32', shape: [2, 32] }, { dtype: 'F32', shape: [2] }]);
    expect(JSON.parse(file.metadata.class_names!)).toEqual(CLASSES);

    const { files, p } = await predicted(run, split);
    expect(maxDiff(classify(await embedded(run, files), file.getFloat32('fc.weight'), file.getFloat32('fc.bias')), p)).toBeLessThan(1e-4);

    // simtrip reads the exported file as the same encoder (fc aside): predict from it with the probe
    // (same weights, same fingerprint) gives the same probabilities.
    const fromExport = await predicted(run, split, out);
    expect(maxDiff(fromExport.p, p)).toBeLessThan(1e-6);
  });

  it('timm BiT: the probe is head.fc, a 1x1 convolution [classes, features, 1, 1], and gives predict\'s probabilities', async () => {
    const bit = await probeRun({ model: { arch: 'bit-r50x1', stem: 'imagenet', width: 2 }, imageSize: 64, normalization: 'bit', perClass: 3 });
    const record = await evalProbe(bit, 'split');
    const out = join(tempDir(), 'bit-probe.safetensors');
    const r = await runCli('export', '--checkpoint', bit.dir, '--format', 'timm', '--with-probe', '--out', out);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('head.fc.weight / head.fc.bias hold it');
    const file = await readSafetensors(out);
    expect(file.info('head.fc.weight')).toEqual({ dtype: 'F32', shape: [2, 64, 1, 1] });
    const { files, p } = await predicted(bit, record);
    // At 64 px GroupNorm's last groups see more than one value, so the features, and the probabilities, vary.
    expect(new Set(p).size).toBeGreaterThan(2);
    expect(maxDiff(classify(await embedded(bit, files), file.getFloat32('head.fc.weight'), file.getFloat32('head.fc.bias')), p)).toBeLessThan(1e-4);
  });

  it('the lines that load a full-width encoder with its probe build the model with num_classes', () => {
    const m = (model: Record<string, unknown>) => ModelSchema.parse(model);
    expect(stateDictTarget(m({ arch: 'resnet50', stem: 'imagenet' }), 'torchvision', 'e.safetensors', 3)).toEqual({
      model: 'torchvision.models.resnet50(num_classes=3)',
      python: ['from safetensors.torch import load_file', 'import torch, torchvision', 'model = torchvision.models.resnet50(num_classes=3)', 'model.load_state_dict(load_file("e.safetensors"), strict=True)'],
    });
    expect(stateDictTarget(m({ arch: 'resnet18', stem: 'imagenet' }), 'timm', 'e.safetensors', 7)).toMatchObject({ model: "timm.create_model('resnet18', num_classes=7)" });
    expect(stateDictTarget(m({ arch: 'bit-r50x1', stem: 'imagenet' }), 'timm', 'b.safetensors', 2)).toMatchObject({ model: "timm.create_model('resnetv2_50x1_bit', num_classes=2)" });
  });

  it('refuses, in one line with exit 2: an ensemble as one fc, a probe of other weights, --run-dir without --with-probe', async () => {
    const other = join(tempDir(), 'other-run');
    await writeCheckpoint(other, { arch: 'resnet18', stem: 'cifar', width: 4 }, { image_size: 16 }, 'imagenet', 77);
    const cases: [string[], RegExp][] = [
      [['--checkpoint', run.dir, '--format', 'torchvision', '--with-probe', logo.id, '--out', join(tempDir(), 'x.safetensors')], /--with-probe linear-.*: a leave-one-group-out ensemble of 2 fold probes .* is no single linear layer, so no fc holds it; export it with --format onnx$/],
      [['--checkpoint', other, '--run-dir', run.dir, '--format', 'onnx', '--with-probe', split.id, '--out', join(tempDir(), 'x.onnx')], /--with-probe linear-.*: fitted on checkpoint .*, not on checkpoint .*other-run/],
      [['--checkpoint', run.dir, '--format', 'onnx', '--run-dir', run.dir, '--out', join(tempDir(), 'x.onnx')], /--run-dir: says where the probe of --with-probe is; add --with-probe$/],
    ];
    for (const [args, message] of cases) {
      const r = await runCli('export', ...args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr.trim()).toMatch(message);
    }
    // Without an id, two probes of this checkpoint are listed to choose from.
    const r = await runCli('export', '--checkpoint', run.dir, '--format', 'onnx', '--with-probe', '--out', join(tempDir(), 'x.onnx'));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^simtrip: --with-probe: 2 probes in .* were fitted on this encoder; name one\. The probes there:\n {2}linear-.*\n {2}linear-.*\n$/);
  });
});
