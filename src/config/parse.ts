/**
 * Config file text to plain data: YAML or JSON by extension, every failure an InputFileError that
 * names the file, the line and the parser's reason on one line.
 */
import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import { InputFileError } from '../util/errors.js';
import { oneLine } from './format.js';

export type ConfigFormat = 'yaml' | 'json';
export type Mapping = Record<string, unknown>;

export const CONFIG_EXTENSIONS: Readonly<Record<string, ConfigFormat>> = {
  '.yaml': 'yaml',
  '.yml': 'yaml',
  '.json': 'json',
};

export function isMapping(v: unknown): v is Mapping {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

export function formatOf(path: string): ConfigFormat {
  const format = CONFIG_EXTENSIONS[extname(path).toLowerCase()];
  if (format === undefined) {
    throw new InputFileError(
      path,
      `unsupported config file type '${extname(path) || '(none)'}' (allowed: ${Object.keys(CONFIG_EXTENSIONS).join(', ')})`,
    );
  }
  return format;
}

function lineCol(text: string, offset: number): { line: number; col: number } {
  const before = text.slice(0, Math.max(0, Math.min(offset, text.length)));
  const lines = before.split('\n');
  return { line: lines.length, col: lines[lines.length - 1]!.length + 1 };
}

/**
 * Offset of the first JSON syntax error, or -1. V8 reports a position for some errors only
 * ("Unexpected token" messages quote a snippet instead), so the position is found independently.
 */
export function jsonErrorOffset(text: string): number {
  let i = 0;
  const fail = (): never => {
    throw new JsonStop(i);
  };
  const ws = (): void => {
    while (i < text.length && (text[i] === ' ' || text[i] === '\t' || text[i] === '\n' || text[i] === '\r')) i++;
  };
  const str = (): void => {
    i++;
    for (;;) {
      if (i >= text.length) fail();
      const c = text[i]!;
      if (c === '"') {
        i++;
        return;
      }
      if (c === '\\') {
        i++;
        const e = text[i];
        if (e === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 1, i + 5))) fail();
          i += 5;
        } else if (e !== undefined && '"\\/bfnrt'.includes(e)) i++;
        else fail();
      } else if (c < ' ') fail();
      else i++;
    }
  };
  const num = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
  const value = (): void => {
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      ws();
      if (text[i] === '}') {
        i++;
        return;
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail();
        str();
        ws();
        if (text[i] !== ':') fail();
        i++;
        value();
        ws();
        if (text[i] === ',') i++;
        else if (text[i] === '}') {
          i++;
          return;
        } else fail();
      }
    }
    if (c === '[') {
      i++;
      ws();
      if (text[i] === ']') {
        i++;
        return;
      }
      for (;;) {
        value();
        ws();
        if (text[i] === ',') i++;
        else if (text[i] === ']') {
          i++;
          return;
        } else fail();
      }
    }
    if (c === '"') return str();
    num.lastIndex = i;
    if (num.test(text)) {
      i = num.lastIndex;
      return;
    }
    for (const lit of ['true', 'false', 'null']) {
      if (text.startsWith(lit, i)) {
        i += lit.length;
        return;
      }
    }
    fail();
  };
  try {
    value();
    ws();
    return i < text.length ? i : -1;
  } catch (e) {
    if (e instanceof JsonStop) return e.offset;
    return -1; // too deeply nested to scan: report the reason without a line
  }
}

class JsonStop {
  constructor(readonly offset: number) {}
}

/** V8's JSON reason without the position or quoted source it sometimes appends (which may span lines). */
function jsonReason(message: string): string {
  return message
    .replace(/,\s*(?:\.\.\.)?".*" is not valid JSON$/s, '')
    .replace(/\s*in JSON at position \d+.*$/s, '')
    .trim();
}

function parseJson(text: string, path: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    const reason = jsonReason((e as Error).message);
    const offset = jsonErrorOffset(text);
    if (offset < 0) throw new InputFileError(path, oneLine(`invalid JSON: ${reason}`));
    const { line, col } = lineCol(text, offset);
    throw new InputFileError(path, oneLine(`invalid JSON at line ${line}, column ${col}: ${reason}`));
  }
}

function parseYaml(text: string, path: string): unknown {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const err = doc.errors[0];
  if (err) {
    const { line, col } = lineCounter.linePos(err.pos[0]);
    throw new InputFileError(path, oneLine(`invalid YAML at line ${line}, column ${col}: ${err.message}`));
  }
  try {
    // The alias cap stops a "billion laughs" file from expanding into gigabytes.
    return doc.toJS({ maxAliasCount: 1000 }) as unknown;
  } catch (e) {
    throw new InputFileError(path, oneLine(`invalid YAML: ${(e as Error).message}`));
  }
}

function kindOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  return `a ${typeof v}`;
}

/**
 * Parses config text. An empty YAML document (nothing but comments) is an empty mapping, i.e. all
 * defaults; anything else at the top level that is not a mapping is an error.
 */
export function parseConfigText(text: string, path: string, format: ConfigFormat = formatOf(path)): Mapping {
  const data = format === 'json' ? parseJson(text, path) : parseYaml(text, path);
  if (format === 'yaml' && (data === null || data === undefined)) return {};
  if (!isMapping(data)) {
    throw new InputFileError(path, `the top level must be a mapping of config keys (got ${kindOf(data)})`);
  }
  return data;
}

function readFailure(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return 'no such file';
  if (code === 'EISDIR') return 'is a directory, expected a config file';
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  return oneLine((e as Error).message);
}

/** Reads and parses one config file; `context` is appended to a read failure (e.g. who extended it). */
export async function readConfigFile(path: string, context = ''): Promise<Mapping> {
  const format = formatOf(path);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new InputFileError(path, readFailure(e) + context);
  }
  // Editors on Windows may prepend a BOM, which JSON.parse rejects.
  return parseConfigText(text.replace(/^\uFEFF/, ''), path, format);
}
