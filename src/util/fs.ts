/** Path checks that answer false, rather than throw, for paths that do not exist or cannot be read. */
import { statSync } from 'node:fs';

export function isFile(path: string): boolean {
  return statSync(path, { throwIfNoEntry: false })?.isFile() ?? false;
}

export function isDirectory(path: string): boolean {
  return statSync(path, { throwIfNoEntry: false })?.isDirectory() ?? false;
}
