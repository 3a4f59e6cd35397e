/**
 * Progress lines for long loops (training steps, feature extraction, probe epochs).
 *
 * On a terminal one line is redrawn in place; anywhere else (CI logs, pipes, files) redrawing with \r
 * would leave thousands of fragments, so plain self-contained lines are printed, rarely enough that a
 * multi-hour run stays readable.
 */

/** What the reporter writes to; a NodeJS.WriteStream fits, and so does a test double. */
export interface ProgressStream {
  write(chunk: string): unknown;
  isTTY?: boolean;
  /** Terminal width: a redrawn line longer than this would wrap, and \r only returns to its last row. */
  columns?: number;
}

export type ProgressFields = Record<string, string | number>;

export interface ProgressOptions {
  /** Leading text, e.g. "train epoch 3/10". */
  label: string;
  /** Number of items the loop will do; 0 or omitted when unknown (no bar, percentage or ETA then). */
  total?: number;
  /** What one item is ("step", "img"): names the counter and the rate. Default "it", not named. */
  unit?: string;
  stream?: ProgressStream;
  isTTY?: boolean;
  /** Clock in milliseconds. */
  now?: () => number;
  /** Terminal: minimum time between redraws. Default 100 ms. */
  redrawIntervalMs?: number;
  /** Plain lines: one at least this often while the loop runs. Default 30 s; 0 turns it off. */
  logIntervalS?: number;
  /** Plain lines: one each time progress passes another multiple of this fraction. Default 0.1; 0 turns it off. */
  logEveryFraction?: number;
  /** Time constant of the rate average behind the ETA. Default 10 s. */
  rateTimeConstantS?: number;
  /** Characters in the terminal bar. Default 24. */
  barWidth?: number;
}

export interface ProgressState {
  done: number;
  total: number;
  elapsedS: number;
  /** Smoothed items per second; NaN until time has passed. */
  rate: number;
  /** Seconds left at the smoothed rate; NaN when unknown. */
  etaS: number;
}

export interface Progress {
  update(done: number, fields?: ProgressFields): void;
  /** Prints the final line (always, unthrottled); later calls are ignored. */
  finish(fields?: ProgressFields): void;
  /** Like finish, for a loop that ends early (a stop request, an error): the line says "stopped after", not "done in". */
  stop(fields?: ProgressFields): void;
  /** Prints a message on its own line without breaking the redrawn one. */
  log(message: string): void;
  state(): ProgressState;
}

/** "45s", "3m05s", "1h02m"; "?" when unknown. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  // Rounded once up front so 59.7 s reads "1m00s", never "60s".
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** Four significant digits without trailing zeros; exponent form where fixed notation would be long. */
export function formatNumber(x: number): string {
  if (Number.isNaN(x)) return 'nan';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  if (Number.isInteger(x) && Math.abs(x) < 1e9) return String(x);
  const a = Math.abs(x);
  if (a !== 0 && (a < 1e-3 || a >= 1e6)) {
    const [mantissa, exponent] = x.toExponential(3).split('e');
    return `${String(Number(mantissa))}e${exponent!.replace('+', '')}`;
  }
  return String(Number(x.toPrecision(4)));
}

function formatFields(fields: ProgressFields): string {
  return Object.entries(fields)
    .map(([key, value]) => `${key} ${typeof value === 'number' ? formatNumber(value) : value}`)
    .join(' ');
}

function formatRate(rate: number, unit: string): string {
  if (!(rate > 0) || !Number.isFinite(rate)) return '';
  // Slow loops (a probe epoch, a big batch) read better as seconds per item.
  return rate >= 1 ? `${formatNumber(Number(rate.toPrecision(3)))} ${unit}/s` : `${formatNumber(Number((1 / rate).toPrecision(3)))} s/${unit}`;
}

export function createProgress(options: ProgressOptions): Progress {
  const {
    label,
    total = 0,
    unit,
    stream = process.stderr,
    isTTY = stream.isTTY === true,
    now = Date.now,
    redrawIntervalMs = 100,
    logIntervalS = 30,
    logEveryFraction = 0.1,
    rateTimeConstantS = 10,
    barWidth = 24,
  } = options;
  const unitName = unit ?? 'it';
  const known = total > 0;
  const start = now();

  let done = 0;
  let fields: ProgressFields = {};
  let finished = false;
  // Rate: an exponential average over time, so irregular update spacing weighs by duration, not count.
  let rate = Number.NaN;
  let sampleAt = start;
  let sampleDone = 0;
  // Output throttling.
  let lastDrawAt = Number.NEGATIVE_INFINITY;
  let drawnLength = 0;
  let lastLineAt = start;
  let lastMilestone = 0;

  const sampleRate = (t: number): void => {
    const dt = (t - sampleAt) / 1000;
    if (dt <= 0) return;
    const instant = (done - sampleDone) / dt;
    rate = Number.isNaN(rate) ? instant : rate + (1 - Math.exp(-dt / rateTimeConstantS)) * (instant - rate);
    sampleAt = t;
    sampleDone = done;
  };

  const state = (t = now()): ProgressState => {
    const remaining = total - done;
    let etaS = Number.NaN;
    if (known) etaS = remaining <= 0 ? 0 : rate > 0 ? remaining / rate : Number.NaN;
    return { done, total, elapsedS: (t - start) / 1000, rate, etaS };
  };

  const counter = (): string => {
    const count = known ? `${done}/${total}` : `${done}`;
    return unit === undefined ? count : `${unit} ${count}`;
  };

  const percent = (): string => (known ? `${Math.floor((100 * Math.min(done, total)) / total)}%` : '');

  /** How the loop ended, once it has: all done, or stopped part-way. */
  let ending: 'done' | 'stopped' | undefined;

  /** The self-contained form, for logs: every line can be read without the ones before it. */
  const plainLine = (t: number, final: boolean): string => {
    const s = state(t);
    const timing = final
      ? `${ending === 'stopped' ? 'stopped after' : 'done in'} ${formatDuration(s.elapsedS)}`
      : `elapsed ${formatDuration(s.elapsedS)}${known ? ` eta ${formatDuration(s.etaS)}` : ''}`;
    // The final line reports the average over the whole loop, the meaningful figure once it is over.
    const shownRate = final && s.elapsedS > 0 ? done / s.elapsedS : s.rate;
    return [label, counter(), percent(), formatFields(fields), formatRate(shownRate, unitName), timing].filter(Boolean).join(' ');
  };

  const bar = (): string => {
    if (!known) return '';
    const filled = Math.min(barWidth, Math.floor((barWidth * Math.min(done, total)) / total));
    const head = filled < barWidth && done > 0 ? '>' : '';
    return `[${'='.repeat(filled)}${head}${' '.repeat(barWidth - filled - head.length)}]`;
  };

  const ttyLine = (t: number, final: boolean): string => {
    const s = state(t);
    const timing = final
      ? `${ending === 'stopped' ? 'stopped after ' : ''}${formatDuration(s.elapsedS)}`
      : `${formatDuration(s.elapsedS)}${known ? `<${formatDuration(s.etaS)}` : ''}`;
    const shownRate = final && s.elapsedS > 0 ? done / s.elapsedS : s.rate;
    const line = [label, bar(), counter(), percent(), formatFields(fields), formatRate(shownRate, unitName), timing].filter(Boolean).join(' ');
    const width = stream.columns;
    return width && width > 1 && line.length > width - 1 ? line.slice(0, width - 1) : line;
  };

  const redraw = (t: number, final: boolean): void => {
    const line = ttyLine(t, final);
    // \r then "erase line", so a shorter line leaves no tail of the previous one.
    stream.write(`\r\x1b[2K${line}${final ? '\n' : ''}`);
    drawnLength = final ? 0 : line.length;
    lastDrawAt = t;
  };

  const end = (how: 'done' | 'stopped', newFields: ProgressFields | undefined): void => {
    if (finished) return;
    finished = true;
    ending = how;
    if (newFields) fields = { ...fields, ...newFields };
    const t = now();
    sampleRate(t);
    if (isTTY) redraw(t, true);
    else stream.write(`${plainLine(t, true)}\n`);
  };

  return {
    update(value, newFields) {
      if (finished) return;
      done = value;
      if (newFields) fields = newFields;
      const t = now();
      sampleRate(t);
      if (isTTY) {
        if (t - lastDrawAt >= redrawIntervalMs) redraw(t, false);
        return;
      }
      // Reaching the total is left to finish(), which prints the closing line anyway.
      const milestone = known && logEveryFraction > 0 && done < total ? Math.floor(done / total / logEveryFraction + 1e-9) : 0;
      const timeDue = logIntervalS > 0 && t - lastLineAt >= logIntervalS * 1000;
      if (milestone > lastMilestone || timeDue) {
        stream.write(`${plainLine(t, false)}\n`);
        lastLineAt = t;
      }
      lastMilestone = Math.max(lastMilestone, milestone);
    },
    finish(newFields) {
      end('done', newFields);
    },
    stop(newFields) {
      end('stopped', newFields);
    },
    log(message) {
      if (isTTY && drawnLength > 0 && !finished) {
        stream.write(`\r\x1b[2K${message}\n`);
        // Drawn again at once: the bar should not vanish until the next throttled update.
        redraw(now(), false);
      } else {
        stream.write(`${message}\n`);
      }
    },
    state: () => state(),
  };
}
