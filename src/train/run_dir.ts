/** The layout of a run directory, in one place so the trainer, eval and report agree on it. */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic, writeJsonAtomic } from '../io/atomic.js';
import { isRecord } from '../util/values.js';

export class RunDir {
  constructor(readonly root: string) {}

  get checkpoints(): string {
    return join(this.root, 'checkpoints');
  }

  get lastCheckpoint(): string {
    return join(this.checkpoints, 'last.safetensors');
  }

  get metrics(): string {
    return join(this.root, 'metrics.jsonl');
  }

  path(name: string): string {
    return join(this.root, name);
  }

  async writeText(name: string, text: string): Promise<void> {
    await writeFileAtomic(this.path(name), text);
  }

  /** A JSON object the run wrote (run.json, ...), or undefined when it is missing or not an object. */
  async readJson(name: string): Promise<Record<string, unknown> | undefined> {
    try {
      const value: unknown = JSON.parse(await readFile(this.path(name), 'utf8'));
      return isRecord(value) ? value : undefined;
    } catch {
      return undefined;
    }
  }

  async writeJson(name: string, value: unknown): Promise<void> {
    await writeJsonAtomic(this.path(name), value);
  }
}
