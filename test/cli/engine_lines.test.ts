/**
 * The engines `auto` passed over are printed only under --verbose (or for an engine the user named),
 * not on every command; an engine that loaded but failed its self-check is named by every command. initEngine is replaced so the test sees the same skipped engines on every
 * machine, whatever is installed there; the model still runs on the cpu backend.
 */
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import type { EngineInfo, EngineName } from '../../src/engine/engine.js';
import { useCpuBackend } from '../helpers.js';
import { resetExitCodeAfterEach, runCli } from './run_cli.js';

const SKIPPED = ['tensorflow-gpu: tfjs-node-gpu not installed', 'tensorflow: tfjs-node not installed'];
const NOTICE = "engine: cuda its self-check failed on this machine (test): matmul: relative error 1; auto moves on to the next engine. Run 'simtrip doctor' for details";

vi.mock('../../src/engine/engine.js', async (importOriginal) => {
  const actual = await importOriginal<typeof import('../../src/engine/engine.js')>();
  return {
    ...actual,
    initEngine: async (requested: EngineName): Promise<EngineInfo> => ({
      requested,
      engine: 'cpu',
      tfBackend: 'cpu',
      skipped: requested === 'auto' ? SKIPPED : [],
      detail: 'test',
      ...(requested === 'auto' ? { notices: [NOTICE] } : {}),
    }),
  };
});

resetExitCodeAfterEach();

let config: string;
let images: string;
let dir: string;

beforeAll(async () => {
  await useCpuBackend();
  dir = await mkdtemp(join(tmpdir(), 'simtrip-engine-lines-'));
  config = join(dir, 'auto.yaml');
  await writeFile(config, 'engine: { backend: auto }\ndata: { image_size: 16 }\nmodel: { arch: resnet18, width: 4 }\neval: { batch_size: 2 }\n');
  images = join(dir, 'images');
  await mkdir(images);
  await sharp(Buffer.alloc(16 * 16 * 3, 60), { raw: { width: 16, height: 16, channels: 3 } }).toFile(join(images, 'a.png'));
});

describe('engines auto passed over', () => {
  it('are not printed by default', async () => {
    const r = await runCli('embed', '--config', config, '--images', images, '--out', join(dir, 'a.npy'));
    expect(r.code).toBe(0);
    expect(r.stderr).not.toContain('engine: skipped');
    expect(r.stderr).not.toContain('tfjs-node');
  });

  it('are printed with --verbose, before or after the command', async () => {
    for (const args of [['--verbose', 'embed'], ['embed', '-v']]) {
      const r = await runCli(...args, '--config', config, '--images', images, '--out', join(dir, 'b.npy'));
      expect(r.code).toBe(0);
      const lines = r.stderr.split('\n').filter((l) => l.startsWith('engine: skipped'));
      expect(lines).toEqual(SKIPPED.map((s) => `engine: skipped ${s}`));
    }
  });

  it('an engine that failed its self-check is named in one line by every command that starts an engine, verbose or not', async () => {
    const embed = await runCli('embed', '--config', config, '--images', images, '--out', join(dir, 'c.npy'));
    expect(embed.code).toBe(0);
    // export picks its engine itself (auto), before it reads the weights.
    const exported = await runCli('export', '--checkpoint', join(dir, 'missing.safetensors'), '--format', 'onnx', '--out', join(dir, 'x.onnx'));
    expect(exported.code).toBe(2);
    for (const r of [embed, exported]) expect(r.stderr.split('\n').filter((l) => l.startsWith('engine: '))).toEqual([NOTICE]);
  });

  it('--help says what --verbose adds', async () => {
    const r = await runCli('--help');
    expect(r.stdout.replace(/\s+/g, ' ')).toMatch(/--verbose print stack traces on errors, and the engines engine\.backend auto passed over/);
  });
});
