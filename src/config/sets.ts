/**
 * `--set a.b.c=value` overrides. The text is typed by the schema leaf it lands on, so `train.epochs=5`
 * is the number 5 and `name=007` stays the string "007" (a YAML parse would turn it into 7), and a typo
 * in the key path is caught here, naming the keys that do exist.
 */
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { UserError } from '../util/errors.js';
import { describeAllowed, objectKeys, unwrap } from './describe.js';
import { closestKey, formatIssue, oneLine, pathText, valueText } from './format.js';
import { isMapping } from './parse.js';

export interface SetOverride {
  /** The override as given, for messages. */
  raw: string;
  path: string[];
  /** Typed value; undefined means "remove the key" (only for optional keys, via `=null`). */
  value: unknown;
  /** Mapping values merge into the section instead of replacing it. */
  merge: boolean;
}

const NUMBER_TEXT = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

/** True when a key may be absent after parsing (ZodOptional without a default), so `=null` can unset it. */
function isUnsettable(schema: z.ZodTypeAny): boolean {
  let s = schema;
  for (;;) {
    if (s instanceof z.ZodOptional) return true;
    if (s instanceof z.ZodDefault) return false;
    if (s instanceof z.ZodNullable) s = s._def.innerType;
    else if (s instanceof z.ZodEffects) s = s._def.schema;
    else return false;
  }
}

function badValue(path: readonly string[], text: string, leaf: z.ZodTypeAny): UserError {
  return new UserError(`--set ${pathText(path)}: got ${valueText(text)}, expected ${describeAllowed(leaf)}`);
}

function parseNumber(text: string, path: readonly string[], leaf: z.ZodTypeAny): number {
  const t = text.trim();
  if (!NUMBER_TEXT.test(t)) throw badValue(path, text, leaf);
  return Number(t);
}

function parseBoolean(text: string, path: readonly string[], leaf: z.ZodTypeAny): boolean {
  const t = text.trim().toLowerCase();
  if (t === 'true') return true;
  if (t === 'false') return false;
  throw badValue(path, text, leaf);
}

function parseFlow(text: string, path: readonly string[]): unknown {
  try {
    return parseYaml(text) as unknown;
  } catch (e) {
    throw new UserError(oneLine(`--set ${pathText(path)}: cannot read ${valueText(text)} as a value: ${(e as Error).message}`));
  }
}

function parseLeaf(text: string, path: readonly string[], leaf: z.ZodTypeAny): unknown {
  const s = unwrap(leaf);
  if (s instanceof z.ZodNumber) return parseNumber(text, path, leaf);
  if (s instanceof z.ZodBoolean) return parseBoolean(text, path, leaf);
  if (s instanceof z.ZodString || s instanceof z.ZodEnum) return text;
  if (s instanceof z.ZodLiteral) {
    const v: unknown = s.value;
    if (typeof v === 'number') return parseNumber(text, path, leaf);
    if (typeof v === 'boolean') return parseBoolean(text, path, leaf);
    return text;
  }
  // Tuples, lists, unions and sections: YAML flow syntax, e.g. [0.2, 1.0], auto, 0.5, {k: 200}.
  return parseFlow(text, path);
}

/** Parses and type-checks one override against `root` (the config schema). */
export function parseSet(raw: string, root: z.ZodTypeAny): SetOverride {
  const eq = raw.indexOf('=');
  if (eq < 0) throw new UserError(oneLine(`--set ${raw}: expected key=value, e.g. train.epochs=10`));
  const keyText = raw.slice(0, eq).trim();
  const text = raw.slice(eq + 1);
  const path = keyText.split('.');
  if (keyText === '' || path.some((seg) => seg.trim() === '')) {
    throw new UserError(oneLine(`--set ${raw}: bad key path '${keyText}', expected dotted keys like train.epochs`));
  }

  let leaf: z.ZodTypeAny = root;
  for (let i = 0; i < path.length; i++) {
    const seg = path[i]!;
    const parent = path.slice(0, i);
    const keys = objectKeys(leaf);
    if (keys === undefined) {
      throw new UserError(
        `--set ${pathText(path)}: '${pathText(parent)}' is not a section (it takes ${describeAllowed(leaf)}), so it has no key '${seg}'`,
      );
    }
    if (!keys.includes(seg)) {
      const under = parent.length > 0 ? ` under '${pathText(parent)}'` : '';
      const hint = closestKey(seg, keys);
      throw new UserError(
        `--set ${pathText(path.slice(0, i + 1))}: unknown key '${seg}'${under} (allowed: ${keys.join(', ')})` +
          (hint !== undefined ? `, did you mean '${hint}'?` : ''),
      );
    }
    leaf = (unwrap(leaf) as z.AnyZodObject).shape[seg] as z.ZodTypeAny;
  }

  if (text.trim() === 'null' && isUnsettable(leaf)) return { raw, path, value: undefined, merge: false };

  const value = parseLeaf(text, path, leaf);
  if (unwrap(leaf) instanceof z.ZodObject) {
    // Validated with the whole config, where defaults and the file's own keys for the section are known.
    if (!isMapping(value)) throw badValue(path, text, leaf);
    return { raw, path, value, merge: true };
  }
  const checked = leaf.safeParse(value);
  if (!checked.success) throw new UserError(oneLine(`--set ${formatIssue(checked.error.issues[0]!, leaf, value, path)}`));
  return { raw, path, value, merge: false };
}
