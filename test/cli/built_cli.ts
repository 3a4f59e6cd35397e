/**
 * The CLI as a separate process, for tests that need real processes (kill -9, Ctrl-C, two writers at
 * once): the current sources bundled as `npm run build` bundles them, into a private folder under
 * node_modules/.cache so the bundle finds the package root and node_modules as dist/ does.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { packageRoot } from '../../src/engine/package_root.js';

export function bundleCli(): string {
  const root = packageRoot();
  const outdir = join(root, 'node_modules', '.cache', 'simtrip-test-cli', String(process.pid));
  const built = spawnSync(process.execPath, [join(root, 'scripts', 'bundle.mjs'), '--outdir', outdir, '--entries', 'simtrip,augment_worker', '--no-sourcemap'], {
    cwd: root,
    encoding: 'utf8',
  });
  if (built.status !== 0) throw new Error(`bundling the CLI failed: ${built.stderr}`);
  return join(outdir, 'simtrip.js');
}

/** A CLI process with its output collected, and a way to wait for a line of it. */
export interface CliProcess {
  child: ChildProcess;
  output(): string;
  /** Resolves once stdout or stderr has matched `pattern`. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<void>;
  /** Resolves with the exit code (or the signal that ended it). */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export function startCli(cli: string, args: string[], cwd: string): CliProcess {
  const child = spawn(process.execPath, [cli, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  const waiters: Array<{ pattern: RegExp; resolve: () => void }> = [];
  const onData = (chunk: Buffer) => {
    text += chunk.toString();
    for (const w of [...waiters]) {
      if (w.pattern.test(text)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  return {
    child,
    output: () => text,
    exited,
    waitFor: (pattern, timeoutMs = 60_000) =>
      new Promise<void>((resolve, reject) => {
        if (pattern.test(text)) return resolve();
        const timer = setTimeout(() => reject(new Error(`no ${pattern} in ${timeoutMs} ms; output so far:\n${text}`)), timeoutMs);
        waiters.push({ pattern, resolve: () => (clearTimeout(timer), resolve()) });
        void exited.then(() => setTimeout(() => reject(new Error(`exited before ${pattern}; output:\n${text}`)), 50));
      }),
  };
}

/** Runs the CLI to its end. */
export async function runCliProcess(cli: string, args: string[], cwd: string): Promise<{ code: number | null; output: string }> {
  const p = startCli(cli, args, cwd);
  const { code } = await p.exited;
  return { code, output: p.output() };
}
