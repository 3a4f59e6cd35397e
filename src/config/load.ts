/**
 * Loading a run configuration: file (YAML/JSON) -> `extends` chain merged -> `--set` overrides ->
 * ConfigSchema. Every failure is a one-line UserError; validation errors name the file that supplied
 * the offending value, which in an `extends` chain is not necessarily the file on the command line.
 */
import { realpath } from 'node:fs/promises';
import { dirname, isAbsolute, join } from 'node:path';
import { Document, isScalar, visit } from 'yaml';
import type { z } from 'zod';
import { UserError, InputFileError } from '../util/errors.js';
import { objectKeys, schemaAt } from './describe.js';
import { formatIssue, oneLine, type KeyPath } from './format.js';
import { isMapping, readConfigFile, type Mapping } from './parse.js';
import { ConfigSchema, defaultStem, type Config } from './schema.js';
import { parseSet } from './sets.js';

export { parseConfigText, readConfigFile, CONFIG_EXTENSIONS } from './parse.js';
export { parseSet, type SetOverride } from './sets.js';

export interface LoadedConfig {
  config: Config;
  /** The file given, then the files it extends, nearest first. */
  files: string[];
}

const EXTENDS_KEY = 'extends';
/** Issues reported per error; more would not fit one readable line. */
const MAX_ISSUES = 5;

/** Which source (file or --set) last wrote each key path; a key inherits the nearest ancestor's entry. */
class Origins {
  private readonly map = new Map<string, string>();
  constructor(private readonly fallback: string) {}

  private static key(path: KeyPath): string {
    return path.map(String).join('\u0000');
  }

  set(path: KeyPath, source: string): void {
    const k = Origins.key(path);
    for (const existing of [...this.map.keys()]) {
      if (existing.startsWith(`${k}\u0000`)) this.map.delete(existing);
    }
    this.map.set(k, source);
  }

  of(path: KeyPath): string {
    for (let n = path.length; n > 0; n--) {
      const hit = this.map.get(Origins.key(path.slice(0, n)));
      if (hit !== undefined) return hit;
    }
    return this.fallback;
  }
}

/** Own-property assignment, so a `__proto__` key in a file is data rather than a prototype change. */
function put(target: Mapping, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

/** Child over parent: mappings merge key by key; lists and scalars replace. Inputs are not modified. */
function deepMerge(base: Mapping, over: Mapping, origins: Origins, source: string, path: string[] = []): Mapping {
  const out: Mapping = {};
  for (const [k, v] of Object.entries(base)) put(out, k, v);
  for (const [k, v] of Object.entries(over)) {
    const here = [...path, k];
    const prev = out[k];
    if (isMapping(v) && Object.prototype.hasOwnProperty.call(out, k) && isMapping(prev)) {
      put(out, k, deepMerge(prev, v, origins, source, here));
    } else {
      put(out, k, v);
      origins.set(here, source);
    }
  }
  return out;
}

function displayPathOf(ref: string, extendedBy: string): string {
  return isAbsolute(ref) ? ref : join(dirname(extendedBy), ref);
}

/** The file and its ancestors, nearest first, each with its data minus the `extends` key. */
async function readChain(file: string): Promise<{ path: string; data: Mapping }[]> {
  const chain: { path: string; data: Mapping; real: string }[] = [];
  let path = file;
  let context = '';
  for (;;) {
    const data = await readConfigFile(path, context);
    const real = await realpath(path).catch(() => path);
    const seen = chain.findIndex((c) => c.real === real);
    if (seen >= 0) {
      const cycle = [...chain.slice(seen).map((c) => c.path), path].join(' -> ');
      throw new UserError(`config extends cycle: ${cycle}`);
    }
    const { [EXTENDS_KEY]: ref, ...rest } = data;
    chain.push({ path, data: rest, real });
    if (ref === undefined) return chain;
    if (typeof ref !== 'string' || ref.trim() === '') {
      throw new InputFileError(path, oneLine(`'extends' must be the path of another config file, got ${JSON.stringify(ref)}`));
    }
    context = ` (extended by ${path})`;
    path = displayPathOf(ref, path);
  }
}

function setAt(data: Mapping, path: readonly string[], value: unknown): Mapping {
  const out: Mapping = { ...data };
  const [head, ...rest] = path;
  if (head === undefined) return out;
  if (rest.length === 0) {
    if (value === undefined) delete out[head];
    else put(out, head, value);
    return out;
  }
  const child = out[head];
  put(out, head, setAt(isMapping(child) ? child : {}, rest, value));
  return out;
}

function issueSourcePath(issue: z.ZodIssue): KeyPath {
  return issue.code === 'unrecognized_keys' && issue.keys.length > 0 ? [...issue.path, issue.keys[0]!] : issue.path;
}

/** One line: issues grouped under the source that supplied them, in zod's order. */
function validationMessage(issues: readonly z.ZodIssue[], data: Mapping, origins: Origins): string {
  // zod reports each failed check, so `batch_size: 0` fails both positive() and min(2); the message
  // describes the leaf as a whole, so such repeats read identically and are dropped.
  const seen = new Set<string>();
  const unique: { source: string; text: string }[] = [];
  for (const issue of issues) {
    const source = origins.of(issueSourcePath(issue));
    const text = formatIssue(issue, ConfigSchema, data);
    if (!seen.has(`${source}\u0000${text}`)) {
      seen.add(`${source}\u0000${text}`);
      unique.push({ source, text });
    }
  }
  const parts: string[] = [];
  let current: string | undefined;
  for (const { source, text } of unique.slice(0, MAX_ISSUES)) {
    if (source !== current) {
      parts.push(current === undefined ? `config error in ${source}: ${text}` : `in ${source}: ${text}`);
      current = source;
    } else {
      parts.push(text);
    }
  }
  if (unique.length > MAX_ISSUES) parts.push(`(and ${unique.length - MAX_ISSUES} more)`);
  return oneLine(parts.join('; '));
}

/**
 * Loads, merges, overrides and validates a config. `sets` are `a.b.c=value` strings applied in order
 * after the `extends` chain is merged.
 */
export async function loadConfig(file: string, sets: readonly string[] = []): Promise<LoadedConfig> {
  const overrides = sets.map((raw) => parseSet(raw, ConfigSchema));
  const chain = await readChain(file);
  const origins = new Origins(file);
  let data: Mapping = {};
  for (const link of [...chain].reverse()) data = deepMerge(data, link.data, origins, link.path);
  for (const o of overrides) {
    const source = `--set ${o.raw}`;
    if (o.merge) {
      const current = o.path.reduce<unknown>((cur, k) => (isMapping(cur) ? cur[k] : undefined), data);
      const base = isMapping(current) ? current : {};
      data = setAt(data, o.path, deepMerge(base, o.value as Mapping, origins, source, o.path));
    } else {
      data = setAt(data, o.path, o.value);
      origins.set(o.path, source);
    }
  }
  const parsed = ConfigSchema.safeParse(data);
  if (!parsed.success) throw new UserError(validationMessage(parsed.error.issues, data, origins));
  return { config: parsed.data, files: chain.map((c) => c.path) };
}

/** Rebuilds `value` with keys in schema order, dropping absent optional keys. */
function ordered(schema: z.ZodTypeAny | undefined, value: unknown): unknown {
  if (Array.isArray(value)) return value.map((v) => ordered(undefined, v));
  if (!isMapping(value)) return value;
  const keys = (schema && objectKeys(schema)) ?? [];
  const out: Mapping = {};
  for (const k of [...keys, ...Object.keys(value).filter((k) => !keys.includes(k))]) {
    if (value[k] !== undefined) put(out, k, ordered(schema && schemaAt(schema, [k]), value[k]));
  }
  return out;
}

/**
 * The resolved config (defaults included) as YAML in schema key order, for `config show` and run
 * directories. Loading this text back gives the same config.
 */
export function configToYaml(config: Config): string {
  const doc = new Document(ordered(ConfigSchema, config));
  // Short lists such as crop_scale read best inline: crop_scale: [0.2, 1].
  visit(doc, {
    Seq(_, node) {
      if (node.items.every((item) => !(item !== null && typeof item === 'object' && 'items' in item))) node.flow = true;
    },
  });
  // model.stem's default depends on model.arch, so the value alone would not tell a reader that
  // changing the arch changes the stem.
  if (config.model.stem === defaultStem(config.model.arch)) {
    const stem = doc.getIn(['model', 'stem'], true);
    if (isScalar(stem)) stem.comment = ` the default for ${config.model.arch}: model.stem follows model.arch unless set (bit-*: imagenet, BiT's root; resnet*: cifar)`;
  }
  return doc.toString({ lineWidth: 0, flowCollectionPadding: false });
}
