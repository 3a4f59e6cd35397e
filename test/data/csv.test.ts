import { describe, expect, it } from 'vitest';
import { CsvSyntaxError, parseCsv } from '../../src/data/csv.js';

describe('parseCsv', () => {
  it('reads plain and quoted fields, CRLF and LF, a BOM and blank lines', () => {
    const text = '\ufeffa,b,c\r\n1,"x, y",3\n\n"he said ""hi""",,"multi\nline"\r\n';
    const records = parseCsv(text);
    expect(records.map((r) => r.fields)).toEqual([
      ['a', 'b', 'c'],
      ['1', 'x, y', '3'],
      ['he said "hi"', '', 'multi\nline'],
    ]);
    expect(records.map((r) => r.line)).toEqual([1, 2, 4]);
  });

  it('keeps empty trailing fields and accepts a last line without newline', () => {
    expect(parseCsv('a,b,\nc,,d').map((r) => r.fields)).toEqual([
      ['a', 'b', ''],
      ['c', '', 'd'],
    ]);
  });

  it('reports unterminated quotes and stray quotes with the line', () => {
    expect(() => parseCsv('a,b\n1,"open\n2,3\n')).toThrow(CsvSyntaxError);
    expect(() => parseCsv('a,b\n1,"open\n2,3\n')).toThrow(/line 2: unterminated quoted field/);
    expect(() => parseCsv('a,b\nx"y,2\n')).toThrow(/line 2: stray quote/);
    expect(() => parseCsv('a\n"q"z\n')).toThrow(/line 2: unexpected 'z' after a closing quote/);
  });
});
