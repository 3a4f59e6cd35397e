/** The layout of a run directory, in one place so the trainer, eval and report agree on it. */
import { join } from 'node:path';
import { writeFileAtomic, writeJsonAtomic } from '../io/atomic.js';

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

  async writeJson(name: string, value: unknown): Promise<void> {
    await writeJsonAtomic(this.path(name), value);
  }
}
