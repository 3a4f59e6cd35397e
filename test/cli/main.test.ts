import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { readNpy } from '../../src/io/npy.js';
import { relativeError } from '../helpers.js';
import { HAS_AVX512 } from '../engine/onednn_winograd_cases.js';
import { resetExitCodeAfterEach, runCli, TINY_CONFIG } from './run_cli.js';
import { writeFakeRun } from '../report/fake_run.js';

const run = runCli;
resetExitCodeAfterEach();

const TINY = TINY_CONFIG;

let dir: string;
let config: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'simtrip-cli-'));
  config = join(dir, 'tiny.yaml');
  await writeFile(config, TINY);
});

describe('usage and config errors exit 2 with one line', () => {
  it('--help lists every command', async () => {
    const r = await run('--help');
    expect(r.code).toBe(0);
    for (const cmd of ['train', 'eval', 'embed', 'report', 'weights', 'doctor', 'config']) expect(r.stdout).toContain(cmd);
  });

  it('train --help explains its options', async () => {
    const r = await run('train', '--help');
    expect(r.code).toBe(0);
    for (const flag of ['--config', '--set', '--run-dir', '--resume']) expect(r.stdout).toContain(flag);
  });

  it('an unknown command or option', async () => {
    expect((await run('trian')).code).toBe(2);
    expect((await run('train', '--config', config, '--epochs', '3')).code).toBe(2);
  });

  it('a bad value names the key, the value and what is allowed', async () => {
    const r = await run('config', 'validate', '--config', config, '--set', 'train.batch_size=0');
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/train\.batch_size/);
    expect(r.stderr).toMatch(/0/);
  });

  it('a bad engine.inference names the key, the value and the runtimes', async () => {
    const r = await run('config', 'validate', '--config', config, '--set', 'engine.inference=torch');
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr.trim()).toBe('simtrip: --set engine.inference: got "torch", expected one of: auto, onednn-plan, onnxruntime, tfjs');
  });

  it('a missing config file names the path', async () => {
    const r = await run('config', 'show', '--config', join(dir, 'nope.yaml'));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('nope.yaml');
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('eval without a protocol', async () => {
    const r = await run('eval', '--config', config);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--linear-probe and\/or --knn/);
  });

  it('eval with a bad label fraction', async () => {
    const r = await run('eval', '--linear-probe', '--config', config, '--label-fraction', '0.1,2');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--label-fraction');
  });
});

describe('config show', () => {
  it('prints the resolved config with defaults and overrides', async () => {
    const r = await run('config', 'show', '--config', config, '--set', 'train.epochs=7');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('epochs: 7');
    expect(r.stdout).toContain('momentum: 0.9');
  });
});

describe('BiT weights for frozen features', () => {
  let npz: string;
  let images: string;
  const bitConfig = async (name: string, model: string) => {
    const path = join(dir, name);
    // Not `extends: tiny.yaml`: its model sets stem: cifar, and a child inherits that.
    const text = TINY.replace(/^model: .*$/m, `model: { arch: bit-r50x1, width: 4, weights: ${npz}${model} }`);
    await writeFile(path, text);
    return path;
  };

  beforeAll(async () => {
    const { bitNpzArrays, npzBytes, randomValues } = await import('../model/bit_files.js');
    const arrays = bitNpzArrays({ depths: [3, 4, 6, 3], width: 4, numClasses: 10 });
    npz = join(dir, 'BiT-frozen.npz');
    await writeFile(npz, npzBytes(arrays, randomValues(arrays, 2)));
    images = join(dir, 'frozen-images');
    await mkdir(images, { recursive: true });
    await sharp(Buffer.alloc(16 * 16 * 3, 90), { raw: { width: 16, height: 16, channels: 3 } }).toFile(join(images, 'a.png'));
  });

  it('config show resolves model.stem from model.arch and says so', async () => {
    const r = await run('config', 'show', '--config', await bitConfig('bit-default.yaml', ''));
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^ {2}stem: imagenet # the default for bit-r50x1: model\.stem follows model\.arch unless set/m);
  });

  it('embed with the default stem writes features from the whole file', async () => {
    const out = join(dir, 'bit-feats.npy');
    const r = await run('embed', '--config', await bitConfig('bit-default.yaml', ''), '--images', images, '--out', out);
    expect(r.code).toBe(0);
    expect((await readNpy(out)).shape).toEqual([1, 128]);
  });

  it('embed and eval refuse a CIFAR stem that leaves the file\'s root new: exit 2, the tensor and the fix in one line', async () => {
    const cfg = await bitConfig('bit-cifar.yaml', ', stem: cifar');
    const out = join(dir, 'refused.npy');
    for (const args of [['embed', '--images', images, '--out', out], ['eval', '--knn']]) {
      const r = await run(...args, '--config', cfg);
      expect(r.code).toBe(2);
      const last = r.stderr.trim().split('\n').at(-1)!;
      expect(last).toMatch(/^simtrip: model\.weights: .*BiT-frozen\.npz leaves 1 backbone tensor\(s\) newly initialised \(backbone\.stem\.conv\.weight\)/);
      expect(last).toContain('set model.stem: imagenet');
    }
    expect(existsSync(out)).toBe(false);
  });
});

describe('doctor', () => {
  it('reports the engines and which one auto picks', async () => {
    const r = await run('doctor');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/ok\s+cpu/);
    expect(r.stdout).toMatch(/no\s+tensorflow-gpu\s+tfjs-node-gpu not installed/);
    expect(r.stdout).toMatch(/auto\s+picks (onednn|cpu)/);
  });

  it('names each inference runtime\'s availability and what auto picks, one line each', async () => {
    const r = await run('doctor');
    expect(r.stdout).toMatch(/^  ok    onnxruntime\s+onnxruntime-node 1\.\d+\.\d+ CPU$/m);
    expect(r.stdout).toMatch(/^  ok    tfjs\s+the training graph on the active engine$/m);
    expect(r.stdout).toMatch(/^  (ok|no)    onednn-plan\s+\S/m);
    expect(r.stdout).toMatch(/^auto     inference picks (onednn-plan|onnxruntime) on (onednn|cpu) \(checked on each run's first batch against the training graph\)$/m);
  });

  it('says whether oneDNN has Winograd convs here (AVX-512) and where engine.winograd uses them', async () => {
    const r = await run('doctor');
    if (!/^  ok    onednn /m.test(r.stdout)) return;
    const line = HAS_AVX512 ? /^  ok    onednn\s+3x3 convs .* Winograd F\(4x4,3x3\): inference plans by default, training too with engine\.winograd: all$/m : /^  no    onednn\s+this CPU lacks AVX-512/m;
    expect(r.stdout).toMatch(/^winograd \(engine\.winograd\)$/m);
    expect(r.stdout).toMatch(line);
  });

  it('says how JPEGs are decoded: natively with libjpeg-turbo, or through sharp and how to enable the native decoder', async () => {
    const r = await run('doctor');
    expect(r.stdout).toMatch(/^  (ok    jpeg\s+native libjpeg-turbo \d+\.\d+\.\d+ with DCT scaling|no    jpeg\s+.+JPEGs decode through sharp)/m);
  });
});

describe('train, eval, embed end to end', () => {
  const runDir = () => join(dir, 'run');

  beforeAll(async () => {
    const r = await run('train', '--config', config, '--run-dir', runDir());
    expect(r.stderr).not.toMatch(/failed/);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/trained 2 epochs \(8 steps\): loss -?[\d.]+ \(mean of epoch 2; last step -?[\d.]+\)/);
  });

  it('train counts one epoch as "1 epoch"', async () => {
    const r = await run('train', '--config', config, '--run-dir', join(dir, 'one-epoch'), '--set', 'train.epochs=1');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/trained 1 epoch \(4 steps\)/);
  });

  it('train refuses to overwrite the run', async () => {
    const r = await run('train', '--config', config, '--run-dir', runDir());
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--resume/);
  });

  it('eval writes the metrics the issue names, as records in the run dir and, with --out, in one JSON', async () => {
    const out = join(dir, 'eval.json');
    const r = await run('eval', '--linear-probe', '--knn', '--config', config, '--checkpoint', join(runDir(), 'checkpoints', 'last'), '--out', out, '--label-fraction', '0.5,1');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/linear@0\.5 acc [\d.]+% bal [\d.]+% f1 [\d.]+% \| linear@1 .* \| knn acc .*\(40 train \/ 20 test\) -> .*evals \(3 new, 0 replaced\)$/m);
    expect(r.stderr).toMatch(/^features 60 images in [\d.]+ s \([\d.]+ img\/s\) end to end, loading and decoding included$/m);
    const report = JSON.parse(await readFile(out, 'utf8'));
    expect(report.results).toHaveLength(3);
    expect(report.train_samples).toBe(40);
    expect(report.test_samples).toBe(20);
    const linear = report.results[0];
    expect(linear.settings.label_fraction).toBe(0.5);
    expect(linear.settings.train_samples).toBe(20);
    expect(linear.metrics.confusion_matrix).toHaveLength(10);
    expect(linear.metrics.per_class[0]).toHaveProperty('recall');
    expect(report.encoder).toMatch(/checkpoint .*epoch 2, step 8/);
    // Each result is a record of its own in the checkpoint's run dir, named in the JSON.
    expect(report.records.map((x: { id: string }) => x.id)).toEqual([expect.stringMatching(/^linear-50pct-step8-[0-9a-f]{10}$/), expect.stringMatching(/^linear-100pct-step8-/), expect.stringMatching(/^knn-step8-/)]);
    for (const { id, path } of report.records) {
      expect(path).toBe(join(runDir(), 'evals', id, 'record.json'));
      const record = JSON.parse(await readFile(path, 'utf8'));
      expect(record.key.encoder).toEqual({ kind: 'checkpoint', file: 'checkpoints/last.safetensors', step: 8 });
      expect(record.other_data).toBeUndefined();
    }
  });

  it('results accumulate: another key adds a record, the same key replaces only its own and says so', async () => {
    const before = await readdir(join(runDir(), 'evals'));
    const r = await run('eval', '--knn', '--config', config, '--checkpoint', runDir(), '--cache-features');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/ -> .*evals \(0 new, 1 replaced\)$/m);
    const replaced = before.find((id) => id.startsWith('knn-'))!;
    expect(r.stderr).toMatch(new RegExp(`^eval: replaced record ${replaced} \\(kNN, same key, written \\d{4}-[^;]+; balanced accuracy [\\d.]+% -> [\\d.]+%\\)$`, 'm'));
    expect((await readdir(join(runDir(), 'evals'))).sort()).toEqual([...before].sort());
    expect((await readNpy(join(runDir(), 'features', 'train.npy'))).shape).toEqual([40, 32]);
    // Another label fraction is another key: added beside the others.
    const more = await run('eval', '--linear-probe', '--label-fraction', '0.1', '--config', config, '--checkpoint', runDir());
    expect(more.stdout).toMatch(/\(1 new, 0 replaced\)$/m);
    const ids = await readdir(join(runDir(), 'evals'));
    expect(ids).toHaveLength(before.length + 1);
    // The run's report is refreshed and shows every record, each with its confusion map.
    const md = await readFile(join(runDir(), 'report', 'summary.md'), 'utf8');
    for (const id of ids) {
      expect(md).toContain(`| \`${id}\` |`);
      expect(md).toContain(`](confusion-${id}.png)`);
    }
    expect(md).toContain('| kNN | split | 100% | 40 | 20 | ');
    expect(r.stderr).toContain(join(runDir(), 'report', 'summary.md'));
  });

  it('eval on other data than the checkpoint was trained on is allowed and labelled; a config model unlike the checkpoint\'s gets one line', async () => {
    const r = await run('eval', '--knn', '--config', config, '--checkpoint', runDir(), '--set', 'data.synthetic.train_size=30', '--set', 'model.width=8');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/ \[other data than trained on: data\.synthetic\.train_size 30 \(trained on 40\)\] -> .*\(1 new, 0 replaced\)$/m);
    expect(r.stderr.split('\n').filter((l) => l.startsWith('model: '))).toEqual([
      "model: the config's model (resnet18, cifar stem, width 8) differs from the checkpoint's (resnet18, cifar stem, width 4); the checkpoint's is used, as its weights were trained in it",
    ]);
    const md = await readFile(join(runDir(), 'report', 'summary.md'), 'utf8');
    expect(md).toContain('(other data than trained on)');
    expect(md).toContain('- **other data than trained on: data.synthetic.train_size 30 (trained on 40)**');
    const records = await Promise.all((await readdir(join(runDir(), 'evals'))).map(async (id) => JSON.parse(await readFile(join(runDir(), 'evals', id, 'record.json'), 'utf8'))));
    expect(records.filter((x) => x.other_data)).toHaveLength(1);
  });

  it('--label-fraction "" is an error, not 100 %', async () => {
    const r = await run('eval', '--linear-probe', '--label-fraction', '', '--config', config, '--checkpoint', runDir());
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--label-fraction: got '', expected comma-separated fractions in \(0, 1\]/);
  });

  it('eval without a checkpoint evaluates the random-init baseline, kept in --run-dir', async () => {
    const home = join(dir, 'baseline');
    const r = await run('eval', '--knn', '--config', config, '--run-dir', home);
    expect(r.code).toBe(0);
    const [id] = await readdir(join(home, 'evals'));
    expect(id).toMatch(/^knn-random-init-[0-9a-f]{10}$/);
    expect(JSON.parse(await readFile(join(home, 'evals', id!, 'record.json'), 'utf8')).encoder).toMatch(/random initialisation/);
  });

  it('embed writes [N, D] float32 features in file-name order', async () => {
    const images = join(dir, 'images');
    await mkdir(images, { recursive: true });
    for (const [i, name] of ['b.png', 'a.png', 'c.jpg'].entries()) {
      const pixels = Buffer.alloc(20 * 24 * 3, 40 * i);
      await sharp(pixels, { raw: { width: 24, height: 20, channels: 3 } }).toFile(join(images, name));
    }
    await writeFile(join(images, 'notes.txt'), 'not an image');
    const out = join(dir, 'feats.npy');
    const r = await run('embed', '--config', config, '--checkpoint', runDir(), '--images', images, '--out', out);
    expect(r.code).toBe(0);
    const npy = await readNpy(out);
    expect(npy.shape).toEqual([3, 32]);
    expect(await readFile(join(dir, 'feats.txt'), 'utf8')).toBe('a.png\nb.png\nc.jpg\n');
    expect(r.stderr).toMatch(/^embedded 3 images in [\d.]+ s \([\d.]+ img\/s\), decoding included$/m);
    // Every runtime embeds the trained checkpoint as the training graph does.
    for (const runtime of ['onnxruntime', 'tfjs']) {
      const other = join(dir, `feats-${runtime}.npy`);
      const o = await run('embed', '--config', config, '--checkpoint', runDir(), '--images', images, '--out', other, '--set', `engine.inference=${runtime}`, '--set', 'eval.batch_size=2');
      expect(o.code).toBe(0);
      expect(o.stderr).toMatch(new RegExp(`^inference ${runtime === 'tfjs' ? 'tfjs training graph' : 'onnxruntime'} `, 'm'));
      expect(relativeError((await readNpy(other)).toFloat32(), npy.toFloat32())).toBeLessThan(1e-4);
    }
  });

  it('embed of a missing folder names it', async () => {
    const r = await run('embed', '--config', config, '--images', join(dir, 'missing'), '--out', join(dir, 'x.npy'));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('missing');
  });
});

describe('the smoke-cifar10 preset on files in the CIFAR-10 binary format', () => {
  it('trains and probes as the README says', async () => {
    const root = join(dir, 'cifar-10-batches-bin');
    await mkdir(root, { recursive: true });
    // 30 records per train file and 70 in the test file: more than the preset's limits (128 / 64).
    const file = (records: number, salt: number) => {
      const buf = Buffer.alloc(records * 3073);
      for (let r = 0; r < records; r++) {
        buf[r * 3073] = (r + salt) % 10;
        for (let i = 1; i < 3073; i++) buf[r * 3073 + i] = (i * 7 + r * 13 + salt) & 255;
      }
      return buf;
    };
    for (let f = 1; f <= 5; f++) await writeFile(join(root, `data_batch_${f}.bin`), file(30, f));
    await writeFile(join(root, 'test_batch.bin'), file(70, 9));
    const preset = join(process.cwd(), 'configs', 'smoke-cifar10.yaml');
    // The preset's engine (auto): onednn where it is built, which CI always does; the cpu fallback
    // takes minutes here, hence the long timeout.
    const sets = ['--set', `data.root=${root}`];
    const runPath = join(dir, 'smoke');
    const t = await run('train', '--config', preset, ...sets, '--run-dir', runPath);
    expect(t.stderr).toMatch(/cifar10 32x32 \(128 train \/ 64 test, limited\)/);
    expect(t.code).toBe(0);
    const e = await run('eval', '--linear-probe', '--config', preset, ...sets, '--checkpoint', runPath);
    expect(e.code).toBe(0);
    expect(e.stdout).toMatch(/linear@1 acc .*\(128 train \/ 64 test\)/);
  }, 600_000);
});

describe('report', () => {
  it('one run: (re)writes its report', async () => {
    const parent = await mkdtemp(join(tmpdir(), 'simtrip-cli-report-'));
    const one = writeFakeRun(parent, { name: 'one', knn: 0.5 });
    const r = await run('report', one);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(join(one, 'report', 'summary.md'));
    expect(await readFile(join(one, 'report', 'summary.md'), 'utf8')).toContain('# Run report: one');
  });

  it('two runs: a comparison in --out, table and overlaid charts', async () => {
    const parent = await mkdtemp(join(tmpdir(), 'simtrip-cli-report-'));
    const a = writeFakeRun(parent, { name: 'simsiam', knn: 0.5 });
    const b = writeFakeRun(parent, { name: 'simtriplet', method: 'simtriplet', simtriplet: true, knn: 0.6 });
    const out = join(parent, 'cmp');
    const r = await run('report', a, b, '--out', out);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('comparison of 2 runs');
    const md = await readFile(join(out, 'summary.md'), 'utf8');
    expect(md).toMatch(/\| simsiam \| simsiam \| .* \| 50\.00% \| logo \| 40\.00% \|/);
    expect(md).toMatch(/\| simtriplet \| simtriplet \| .* \| 60\.00% \| logo \| 40\.00% \|/);
    for (const f of ['loss.png', 'knn.png', 'label_fraction.png']) expect((await readFile(join(out, f))).subarray(1, 4).toString()).toBe('PNG');
  });

  it('a folder that is not a run: exit 2, one line naming the path and what is missing', async () => {
    const parent = await mkdtemp(join(tmpdir(), 'simtrip-cli-report-'));
    const good = writeFakeRun(parent, { name: 'good' });
    const bad = join(parent, 'empty');
    await mkdir(bad);
    const r = await run('report', good, bad);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain(bad);
    expect(r.stderr).toMatch(/not a simtrip run directory/);
    const missing = await run('report', join(parent, 'nowhere'));
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain(join(parent, 'nowhere'));
    expect((await run('report')).code).toBe(2);
  });
});

describe('weights inspect', () => {
  it('prints what a BiT .npz holds and the config lines that use it; --json for scripts', async () => {
    const { bitNpzArrays, npzBytes, randomValues } = await import('../model/bit_files.js');
    const arrays = bitNpzArrays({ depths: [3, 4, 6, 3], width: 4, numClasses: 10 });
    const path = join(dir, 'BiT-tiny.npz');
    await writeFile(path, npzBytes(arrays, randomValues(arrays, 1)));
    const r = await run('weights', 'inspect', path);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^format {7}BiT npz/m);
    expect(r.stdout).toMatch(new RegExp(`^tensors {6}${arrays.length}$`, 'm'));
    expect(r.stdout).toMatch(/^dtypes {7}float32 x \d+$/m);
    expect(r.stdout).toContain('BiT ResNet-v2 R50x1 (depths 3,4,6,3, width factor 1, root width 4, head 10 classes)');
    expect(r.stdout).toMatch(/^use with {5}model\.arch: bit-r50x1$/m);
    const json = await run('weights', 'inspect', path, '--json');
    expect(JSON.parse(json.stdout)).toMatchObject({ format: 'BiT npz', tensors: arrays.length });
  });

  it('an image given as a checkpoint: eval and embed say what weights inspect says of it', async () => {
    const png = join(dir, 'some.png');
    await sharp({ create: { width: 4, height: 4, channels: 3, background: '#808080' } }).png().toFile(png);
    const inspect = await run('weights', 'inspect', png);
    expect(inspect.code).toBe(2);
    expect(inspect.stderr).toBe(`simtrip: ${png}: unsupported weights format '.png' (expected .safetensors, .npz, or a torch.save file: .pth, .pth.tar, .pt, .ckpt, .bin)\n`);
    const evaluated = await run('eval', '--knn', '--config', config, '--checkpoint', png);
    expect(evaluated.code).toBe(2);
    expect(evaluated.stderr.split('\n').filter((l) => l.startsWith('simtrip:'))).toEqual([inspect.stderr.trim()]);
    const embedded = await run('embed', '--config', config, '--checkpoint', png, '--images', dir, '--out', join(dir, 'x.npy'));
    expect(embedded.stderr.split('\n').filter((l) => l.startsWith('simtrip:'))).toEqual([inspect.stderr.trim()]);
  });

  it('a missing file: exit 2, one line', async () => {
    const r = await run('weights', 'inspect', join(dir, 'nope.npz'));
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/nope\.npz: no such file/);
  });
});
