/**
 * Reading the zod schema back as data: which keys a section allows and, in words, which values a leaf
 * accepts. Error messages and `--set` parsing both come from here, so they can never drift from the
 * schema itself.
 */
import { z } from 'zod';

/** Strips the wrappers that do not change what a value looks like (defaults, optionality, refinements). */
export function unwrap(schema: z.ZodTypeAny): z.ZodTypeAny {
  let s = schema;
  for (;;) {
    if (s instanceof z.ZodDefault) s = s._def.innerType;
    else if (s instanceof z.ZodOptional || s instanceof z.ZodNullable) s = s._def.innerType;
    else if (s instanceof z.ZodEffects) s = s._def.schema;
    else return s;
  }
}

/** The keys of an object schema, in schema order; undefined when the schema is not an object. */
export function objectKeys(schema: z.ZodTypeAny): string[] | undefined {
  const s = unwrap(schema);
  return s instanceof z.ZodObject ? Object.keys(s.shape as Record<string, unknown>) : undefined;
}

/**
 * The schema reached by following `path` (object keys, tuple/array indices) from `root`, or undefined
 * where the path leaves the schema. Unions are not descended into: no key path in the config needs it.
 */
export function schemaAt(root: z.ZodTypeAny, path: readonly (string | number)[]): z.ZodTypeAny | undefined {
  let s: z.ZodTypeAny | undefined = root;
  for (const seg of path) {
    if (s === undefined) return undefined;
    const u = unwrap(s);
    if (u instanceof z.ZodObject) {
      const shape = u.shape as Record<string, z.ZodTypeAny>;
      s = Object.prototype.hasOwnProperty.call(shape, String(seg)) ? shape[String(seg)] : undefined;
    } else if (u instanceof z.ZodTuple) {
      s = typeof seg === 'number' ? (u.items as z.ZodTypeAny[])[seg] : undefined;
    } else if (u instanceof z.ZodArray) {
      s = typeof seg === 'number' ? u.element : undefined;
    } else {
      return undefined;
    }
  }
  return s;
}

interface Bound {
  value: number;
  inclusive: boolean;
}

function numberBounds(s: z.ZodNumber): { int: boolean; lo?: Bound; hi?: Bound } {
  let int = false;
  let lo: Bound | undefined;
  let hi: Bound | undefined;
  for (const c of s._def.checks) {
    if (c.kind === 'int') int = true;
    else if (c.kind === 'min') {
      // The tightest bound wins: positive().min(2) must read as ">= 2", not "> 0".
      if (!lo || c.value > lo.value || (c.value === lo.value && !c.inclusive)) lo = { value: c.value, inclusive: c.inclusive };
    } else if (c.kind === 'max') {
      if (!hi || c.value < hi.value || (c.value === hi.value && !c.inclusive)) hi = { value: c.value, inclusive: c.inclusive };
    }
  }
  // For integers "> 0" is ">= 1"; saying so matches how people think about counts.
  if (int && lo && !lo.inclusive) lo = { value: Math.floor(lo.value) + 1, inclusive: true };
  if (int && hi && !hi.inclusive) hi = { value: Math.ceil(hi.value) - 1, inclusive: true };
  return { int, lo, hi };
}

function describeNumber(s: z.ZodNumber): string {
  const { int, lo, hi } = numberBounds(s);
  const noun = int ? 'an integer' : 'a number';
  if (lo && hi) {
    if (lo.inclusive && hi.inclusive) return `${noun} in [${lo.value}, ${hi.value}]`;
    return `${noun} ${lo.inclusive ? '>=' : '>'} ${lo.value} and ${hi.inclusive ? '<=' : '<'} ${hi.value}`;
  }
  if (lo) return `${noun} ${lo.inclusive ? '>=' : '>'} ${lo.value}`;
  if (hi) return `${noun} ${hi.inclusive ? '<=' : '<'} ${hi.value}`;
  return noun;
}

function literalText(v: unknown): string {
  return typeof v === 'string' ? JSON.stringify(v) : String(v);
}

/** What `schema` accepts, in words, e.g. 'an integer >= 2', 'one of: synthetic, cifar10'. */
export function describeAllowed(schema: z.ZodTypeAny): string {
  const nullable = isNullable(schema);
  const text = describeInner(unwrap(schema));
  return nullable ? `${text} or null` : text;
}

function isNullable(schema: z.ZodTypeAny): boolean {
  let s = schema;
  for (;;) {
    if (s instanceof z.ZodNullable) return true;
    if (s instanceof z.ZodDefault || s instanceof z.ZodOptional) s = s._def.innerType;
    else if (s instanceof z.ZodEffects) s = s._def.schema;
    else return false;
  }
}

function describeInner(s: z.ZodTypeAny): string {
  if (s instanceof z.ZodNumber) return describeNumber(s);
  if (s instanceof z.ZodBoolean) return 'true or false';
  if (s instanceof z.ZodString) {
    const min = s._def.checks.find((c) => c.kind === 'min');
    return min && min.kind === 'min' && min.value >= 1 ? 'a non-empty string' : 'a string';
  }
  if (s instanceof z.ZodEnum) return `one of: ${(s.options as string[]).join(', ')}`;
  if (s instanceof z.ZodNativeEnum) return `one of: ${Object.values(s.enum as object).map(String).join(', ')}`;
  if (s instanceof z.ZodLiteral) return literalText(s.value);
  if (s instanceof z.ZodUnion) {
    const options = s.options as z.ZodTypeAny[];
    const inner = options.map(unwrap);
    if (inner.every((o) => o instanceof z.ZodLiteral)) {
      return `one of: ${inner.map((o) => literalText((o as z.ZodLiteral<unknown>).value)).join(', ')}`;
    }
    return options.map(describeAllowed).join(' or ');
  }
  if (s instanceof z.ZodTuple) {
    const items = (s.items as z.ZodTypeAny[]).map(describeAllowed);
    if (items.length > 0 && items.every((d) => d === items[0])) {
      return `a list of ${items.length} values, each ${items[0]}`;
    }
    return `a list [${items.join(', ')}]`;
  }
  if (s instanceof z.ZodArray) return `a list, each item ${describeAllowed(s.element)}`;
  if (s instanceof z.ZodObject) return `a mapping (keys: ${Object.keys(s.shape as object).join(', ')})`;
  if (s instanceof z.ZodRecord) return 'a mapping';
  return 'a valid value';
}
