/**
 * Turns zod issues into one-line messages that say where (dotted key path), what was given and what is
 * allowed, the allowed part read from the schema. zod's own messages ("Expected number, received
 * string") name neither the key nor the accepted range, which is what a user needs to fix a config.
 */
import type { z } from 'zod';
import { describeAllowed, objectKeys, schemaAt } from './describe.js';

export type KeyPath = readonly (string | number)[];

const MAX_VALUE_CHARS = 60;

export function pathText(path: KeyPath): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out === '' ? seg : `.${seg}`;
  }
  return out;
}

/** JSON of a value, cut to a length that keeps the message readable on one terminal line. */
export function valueText(value: unknown): string {
  let text: string;
  if (value === undefined) text = 'nothing';
  else {
    try {
      text = JSON.stringify(value) ?? String(value);
    } catch {
      text = String(value);
    }
  }
  return text.length > MAX_VALUE_CHARS ? `${text.slice(0, MAX_VALUE_CHARS - 3)}...` : text;
}

/** The value at `path` inside plain data, or undefined where the path does not exist. */
export function valueAt(data: unknown, path: KeyPath): unknown {
  let cur = data;
  for (const seg of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    if (!Object.prototype.hasOwnProperty.call(cur, seg)) return undefined;
    cur = (cur as Record<string | number, unknown>)[seg];
  }
  return cur;
}

function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j]!;
      prev[j] = Math.min(up + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return prev[b.length]!;
}

/** The allowed key closest to a typo, when it is close enough to be a plausible intent. */
export function closestKey(key: string, allowed: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of allowed) {
    const d = editDistance(key.toLowerCase(), k.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = k;
    }
  }
  return best !== undefined && bestD <= Math.max(2, Math.floor(key.length / 3)) ? best : undefined;
}

/** `unknown key 'train.batchsize' (allowed: epochs, batch_size, ...)`, shared with --set errors. */
export function unknownKeyText(parent: KeyPath, keys: readonly string[], allowed: readonly string[] | undefined): string {
  const full = keys.map((k) => `'${pathText([...parent, k])}'`).join(', ');
  let text = `unknown key${keys.length === 1 ? '' : 's'} ${full}`;
  if (allowed) text += ` (allowed: ${allowed.join(', ')})`;
  const hint = keys.length === 1 && allowed ? closestKey(keys[0]!, allowed) : undefined;
  if (hint !== undefined) text += `, did you mean '${hint}'?`;
  return text;
}

/**
 * One issue as text. `root` and `input` are what was parsed; `prefix` is prepended to key paths when
 * `root` is a sub-schema (a --set leaf) rather than the whole config.
 */
export function formatIssue(issue: z.ZodIssue, root: z.ZodTypeAny, input: unknown, prefix: KeyPath = []): string {
  const full = [...prefix, ...issue.path];
  const where = full.length > 0 ? pathText(full) : 'top level';
  if (issue.code === 'unrecognized_keys') {
    return unknownKeyText(full, issue.keys, objectKeys(schemaAt(root, issue.path) ?? root));
  }
  const value = valueAt(input, issue.path);
  const got = issue.code === 'invalid_type' && issue.received === 'undefined' ? 'missing' : `got ${valueText(value)}`;
  // Refinements and regexes carry their own wording of the rule; the schema cannot be read for it.
  if (issue.code === 'custom' || issue.code === 'invalid_string') {
    const msg = issue.message.trim();
    return /^expected\b/i.test(msg) ? `${where}: ${got}, ${msg}` : `${where}: ${got}: ${msg}`;
  }
  const schema = schemaAt(root, issue.path);
  const allowed = schema ? describeAllowed(schema) : issue.message.trim().toLowerCase();
  return `${where}: ${got}, expected ${allowed}`;
}

/** Collapses any line breaks so the CLI's one-line contract holds whatever a parser put in a reason. */
export function oneLine(text: string): string {
  return text.replace(/\s*[\r\n]+\s*/g, ' ').trim();
}
