/**
 * One run of check:cuda (src/check/cuda.ts): its rows, what each needs to be fixed without another
 * device run, the convolutions each check ran (with the algorithm cuDNN's search chose), progress as
 * parts start, and the time budget. A check that throws becomes a FAIL row with its whole error; the
 * run goes on.
 */
import type { CudaBackend } from '../engine/cuda/backend.js';
import type { ConvPlanInfo } from '../engine/cuda/native.js';
import type { Scale } from './kernel_cases.js';

export const PARTS = ['kernels', 'steps', 'mixed16', 'probe', 'golden', 'tf32'] as const;
export type Part = (typeof PARTS)[number];

/** One convolution a check ran, as cuDNN's search planned it. */
export interface ConvUse {
  direction: 'forward' | 'backward data' | 'backward filter';
  storage: string;
  math: string;
  /** "n=2 16x16x8 -> 8x8x16, 3x3 stride 2 pad 1 dilation 1" */
  shape: string;
  /** cuDNN's algorithm enum and math type of the algorithm the last call ran; workspace bytes. */
  algorithm: number;
  mathType: number;
  workspace: number;
  /** How many usable algorithms the search ranked. */
  candidates: number;
}

/** What a fix needs without another device run. */
export interface CheckDetail {
  kernel: string;
  shapes?: number[][];
  dtypes?: string[];
  relativeError?: number;
  maxError?: number;
  tolerance?: number;
  /** The error, whole (device errors name the call, shape, algorithm and status). */
  error?: string;
  /** cudnnStatus_t of a failed cuDNN call. */
  cudnnStatus?: number;
  convolutions?: ConvUse[];
}

export interface CheckRow {
  part: Part;
  name: string;
  value: string;
  limit: string;
  ok: boolean | null;
  detail?: CheckDetail;
}

const DIRECTIONS = ['forward', 'backward data', 'backward filter'] as const;

/** A plan's key ("dir storage math n h w c k r s padH padW strideH strideW dilH dilW outH outW") in words. */
export function describeConvPlan(p: ConvPlanInfo): ConvUse {
  const [dir, storage, math, ...v] = p.key.split(' ');
  const [n, h, w, c, k, r, sz, ph, pw, sh, sw, dh, dw, oh, ow] = v.map(Number);
  const used = p.algorithms[p.used] ?? p.algorithms[0];
  return {
    direction: DIRECTIONS[Number(dir)] ?? 'forward',
    storage: storage!,
    math: math!,
    shape: `n=${n} ${h}x${w}x${c} -> ${oh}x${ow}x${k}, ${r}x${sz} stride ${sh},${sw} pad ${ph},${pw} dilation ${dh},${dw}`,
    algorithm: used?.algo ?? -1,
    mathType: used?.mathType ?? -1,
    workspace: used?.workspace ?? 0,
    candidates: p.algorithms.length,
  };
}

/** The cuDNN status a device error names ("(cudnnStatus_t 9)"), if any. */
export function cudnnStatusOf(message: string | undefined): number | undefined {
  const m = message && /cudnnStatus_t (\d+)/.exec(message);
  return m ? Number(m[1]) : undefined;
}


export interface CheckRunSetup {
  target: string;
  reference: string;
  scale: Scale;
  fixtures: string;
  backend: CudaBackend;
  /** Seconds after which no further part starts. */
  budget?: number;
  /** The parts that will run, in order (for the progress lines). */
  parts: readonly Part[];
  log: (line: string) => void;
  save: (rows: CheckRow[], convolutions: ConvUse[]) => void;
}

export class CheckRun {
  readonly rows: CheckRow[] = [];
  readonly target: string;
  readonly reference: string;
  readonly scale: Scale;
  readonly fixtures: string;
  readonly backend: CudaBackend;
  private readonly t0 = performance.now();
  private partsStarted = 0;
  /** Calls each convolution plan had served at the last look. */
  private readonly planCalls = new Map<string, number>();

  constructor(private readonly setup: CheckRunSetup) {
    ({ target: this.target, reference: this.reference, scale: this.scale, fixtures: this.fixtures, backend: this.backend } = setup);
  }

  /** Seconds since the run began, unrounded: a sub-second budget must still compare correctly. */
  private elapsed(): number {
    return (performance.now() - this.t0) / 1000;
  }

  add(row: CheckRow): void {
    this.rows.push(row);
    this.setup.log(`${row.ok === false ? 'FAIL' : row.ok ? 'ok  ' : 'info'} ${row.part.padEnd(7)} ${row.name}: ${row.value}${row.limit ? ` (limit ${row.limit})` : ''}`);
  }

  /** Runs one check (or a group of them); an error becomes a FAIL row naming it, with its convolutions. */
  async guard(part: Part, name: string, f: () => Promise<void>): Promise<void> {
    try {
      await f();
    } catch (e) {
      const error = ((e as Error).message ?? String(e)).replace(/\s*\n\s*/g, ' ');
      this.add({ part, name, value: `error: ${error}`, limit: '', ok: false, detail: { kernel: name, error, cudnnStatus: cudnnStatusOf(error), convolutions: this.convolutionsSince() } });
    }
  }

  /** The convolutions run since the last call, with their plans (by the calls each plan served). */
  convolutionsSince(): ConvUse[] {
    const used: ConvUse[] = [];
    for (const p of this.backend.addon.convPlans()) {
      if ((this.planCalls.get(p.key) ?? 0) !== p.calls) used.push(describeConvPlan(p));
      this.planCalls.set(p.key, p.calls);
    }
    return used;
  }

  /**
   * Saves the rows so far; whether `part` may start (logged), or a row saying the budget ran out. The
   * first part always runs: a check that ran nothing would say nothing about the machine.
   */
  starting(part: Part): boolean {
    this.finish();
    const { budget, parts } = this.setup;
    if (budget !== undefined && this.partsStarted > 0 && this.elapsed() >= budget) {
      this.add({ part, name: 'not run', value: `the time budget of ${budget} s was spent after ${Math.round(this.elapsed())} s`, limit: '', ok: null });
      return false;
    }
    this.partsStarted++;
    this.setup.log(`== part ${parts.indexOf(part) + 1}/${parts.length}: ${part} (at ${Math.round(this.elapsed())} s)`);
    return true;
  }

  /** Saves the rows and every convolution plan. */
  finish(): void {
    this.setup.save(this.rows, this.backend.addon.convPlans().map(describeConvPlan));
  }
}
