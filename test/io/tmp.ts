/** Per-test scratch directories under the OS temp dir, removed when the test process exits. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, expect } from 'vitest';
import { InputFileError } from '../../src/util/errors.js';

const created: string[] = [];

afterAll(() => {
  for (const dir of created) rmSync(dir, { recursive: true, force: true });
});

export function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'simtrip-io-'));
  created.push(dir);
  return dir;
}

/** test/fixtures/<name>, resolved from this file so the suite runs from any working directory. */
export function fixture(...parts: string[]): string {
  return join(fileURLToPath(new URL('../fixtures/', import.meta.url)), ...parts);
}

/** Asserts that `promise` (or `fn`) fails with an InputFileError for `path` whose reason matches. */
export async function expectInputFileError(
  action: Promise<unknown> | (() => unknown),
  path: string,
  reason: RegExp,
): Promise<InputFileError> {
  let error: unknown;
  try {
    await (typeof action === 'function' ? action() : action);
  } catch (err) {
    error = err;
  }
  expect(error).toBeInstanceOf(InputFileError);
  const e = error as InputFileError;
  expect(e.path).toBe(path);
  expect(e.reason).toMatch(reason);
  expect(e.message).toContain(path);
  return e;
}
