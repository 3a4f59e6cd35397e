import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { writeFileAtomic, writeJsonAtomic } from '../../src/io/atomic.js';
import { tempDir } from './tmp.js';

describe('writeFileAtomic', () => {
  it('writes strings, bytes and chunk lists, creating missing parent directories', async () => {
    const dir = tempDir();
    const nested = join(dir, 'a', 'b', 'out.bin');
    await writeFileAtomic(nested, [Buffer.from('ab'), new Uint8Array([0x63, 0x64]), Buffer.alloc(0), Buffer.from('e')]);
    expect(readFileSync(nested, 'utf8')).toBe('abcde');
    await writeFileAtomic(join(dir, 's.txt'), 'héllo');
    expect(readFileSync(join(dir, 's.txt'), 'utf8')).toBe('héllo');
    const view = new Uint8Array([9, 1, 2, 3, 9]).subarray(1, 4);
    await writeFileAtomic(join(dir, 'v.bin'), view);
    expect([...readFileSync(join(dir, 'v.bin'))]).toEqual([1, 2, 3]);
  });

  it('replaces an existing file and leaves no temporary files behind', async () => {
    const dir = tempDir();
    const target = join(dir, 'ckpt.json');
    writeFileSync(target, 'old content that is longer than the new one');
    await writeFileAtomic(target, 'new');
    expect(readFileSync(target, 'utf8')).toBe('new');
    expect(readdirSync(dir)).toEqual(['ckpt.json']);
  });

  it('writes a multi-megabyte chunk list completely', async () => {
    const dir = tempDir();
    const big = new Uint8Array(5 * 1024 * 1024).map((_, i) => (i * 7) & 0xff);
    await writeFileAtomic(join(dir, 'big'), [big, big.subarray(3)]);
    const back = readFileSync(join(dir, 'big'));
    expect(back.length).toBe(big.length * 2 - 3);
    expect(back[big.length + 10]).toBe(big[13]);
  });

  it('removes the temporary file and rethrows when the rename fails', async () => {
    const dir = tempDir();
    const target = join(dir, 'occupied');
    mkdirSync(join(target, 'child'), { recursive: true }); // a non-empty directory cannot be renamed over
    await expect(writeFileAtomic(target, 'data')).rejects.toMatchObject({ code: expect.stringMatching(/EISDIR|ENOTEMPTY|EEXIST/) });
    expect(readdirSync(dir)).toEqual(['occupied']);
    expect(readdirSync(target)).toEqual(['child']);
  });
});

describe('writeJsonAtomic', () => {
  it('writes pretty JSON with a trailing newline', async () => {
    const path = join(tempDir(), 'x.json');
    await writeJsonAtomic(path, { a: [1, 2], b: 'c' });
    const text = readFileSync(path, 'utf8');
    expect(text.endsWith('}\n')).toBe(true);
    expect(JSON.parse(text)).toEqual({ a: [1, 2], b: 'c' });
  });

  it('refuses values that have no JSON form instead of writing "undefined"', async () => {
    const path = join(tempDir(), 'x.json');
    await expect(writeJsonAtomic(path, undefined)).rejects.toThrow(TypeError);
  });
});
