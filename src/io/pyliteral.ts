/**
 * A parser for the small subset of Python literals that .npy headers use: dicts with string keys,
 * tuples, lists, strings, integers (Python 2 'L' suffix tolerated), True, False and None. Headers
 * come from files we did not write, so this never evaluates anything, it only parses.
 */
import { FormatError } from './source.js';

export type PyValue = string | number | boolean | null | PyValue[] | Map<string, PyValue>;

const WORDS: Readonly<Record<string, boolean | null>> = { True: true, False: false, None: null };

class Parser {
  private pos = 0;

  constructor(private readonly text: string) {}

  parseAll(): PyValue {
    const value = this.value();
    this.skipSpace();
    if (this.pos !== this.text.length) this.fail('unexpected trailing text');
    return value;
  }

  private fail(what: string): never {
    throw new FormatError(`cannot parse header ${JSON.stringify(this.text.trim())}: ${what} at ${this.pos}`);
  }

  private skipSpace(): void {
    while (this.pos < this.text.length && /\s/.test(this.text[this.pos]!)) this.pos++;
  }

  private peek(): string {
    this.skipSpace();
    return this.text[this.pos] ?? '';
  }

  private expect(char: string): void {
    if (this.peek() !== char) this.fail(`expected '${char}'`);
    this.pos++;
  }

  private value(): PyValue {
    const c = this.peek();
    if (c === '{') return this.dict();
    if (c === '(') return this.sequence(')');
    if (c === '[') return this.sequence(']');
    if (c === "'" || c === '"') return this.string();
    if (/[-+\d]/.test(c)) return this.integer();
    return this.word();
  }

  /** Comma-separated items up to `close`, trailing comma allowed (as in "(3,)"). */
  private items<T>(close: string, item: () => T): T[] {
    const out: T[] = [];
    this.pos++;
    while (this.peek() !== close) {
      out.push(item());
      if (this.peek() === ',') this.pos++;
      else if (this.peek() !== close) this.fail(`expected ',' or '${close}'`);
    }
    this.pos++;
    return out;
  }

  private dict(): Map<string, PyValue> {
    const entries = this.items('}', (): [string, PyValue] => {
      if (!["'", '"'].includes(this.peek())) this.fail('expected a string key');
      const key = this.string();
      this.expect(':');
      return [key, this.value()];
    });
    return new Map(entries);
  }

  private sequence(close: string): PyValue[] {
    return this.items(close, () => this.value());
  }

  private string(): string {
    const quote = this.text[this.pos]!;
    const end = this.text.indexOf(quote, this.pos + 1);
    if (end < 0) this.fail('unterminated string');
    const body = this.text.slice(this.pos + 1, end);
    if (body.includes('\\')) this.fail('escape sequences are not supported');
    this.pos = end + 1;
    return body;
  }

  private integer(): number {
    const match = /^[-+]?\d+L?/.exec(this.text.slice(this.pos));
    if (!match) this.fail('expected an integer');
    this.pos += match[0].length;
    const value = Number(match[0].replace('L', ''));
    if (!Number.isSafeInteger(value)) this.fail('integer out of range');
    return value;
  }

  private word(): boolean | null {
    const match = /^[A-Za-z_]\w*/.exec(this.text.slice(this.pos));
    if (!match || !Object.hasOwn(WORDS, match[0])) this.fail('unexpected token');
    this.pos += match[0].length;
    return WORDS[match[0]] ?? null;
  }
}

export function parsePythonLiteral(text: string): PyValue {
  return new Parser(text).parseAll();
}
