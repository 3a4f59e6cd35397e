/**
 * Frozen pretrained features (`simtrip embed`, and `simtrip eval` without --checkpoint) are only as
 * good as the weights under them. A backbone tensor that model.weights left at its random
 * initialisation (BiT's 7x7 root behind a CIFAR stem, every norm of the BatchNorm variant) turns every
 * feature into noise, and with no training after the load nothing repairs it. Training may start from
 * such a partial load (the load report says what is new); these commands refuse it.
 */
import type { ModelConfig } from '../config/schema.js';
import { BACKBONE_PREFIX, isBitArch } from '../model/build.js';
import { inspectWeights, usageModelSettings } from '../model/inspect.js';
import type { WeightsReport } from '../model/weights.js';
import { UserError } from '../util/errors.js';
import { listSome } from '../util/text.js';

/**
 * The config lines under which the file fills the whole backbone: where the model settings that
 * `simtrip weights inspect` reads from the file differ from the config's. The BatchNorm variant takes
 * only BiT's conv kernels by design, so its norms come back as `model.norm: group`.
 */
export async function fixingLines(path: string, model: ModelConfig, fresh: readonly string[]): Promise<string[]> {
  const lines: string[] = [];
  for (const [key, value] of Object.entries(usageModelSettings((await inspectWeights(path)).usage))) {
    if (String(model[key as keyof ModelConfig]) !== value) lines.push(`model.${key}: ${value}`);
  }
  const freshNorm = fresh.some((n) => /(^|\.)norm\d?\.(weight|bias|running_mean|running_var)$/.test(n));
  if (isBitArch(model.arch) && model.norm === 'batch' && freshNorm && !lines.some((l) => l.startsWith('model.norm:'))) {
    lines.push('model.norm: group');
  }
  return lines;
}

/** Throws a UserError (exit 2) naming the backbone tensors the weights left new and the config lines that fix it. */
export async function requireWholeBackbone(report: WeightsReport, model: ModelConfig): Promise<void> {
  const fresh = report.missing.filter((n) => n.startsWith(BACKBONE_PREFIX));
  if (fresh.length === 0) return;
  const lines = await fixingLines(report.path, model, fresh);
  const fix =
    lines.length > 0
      ? `set ${lines.join(', ')} to load them from the file`
      : `use a weights file that holds the whole ${model.arch} backbone (simtrip weights inspect ${report.path} shows what this one holds)`;
  throw new UserError(
    `model.weights: ${report.path} leaves ${fresh.length} backbone tensor(s) newly initialised (${listSome(fresh, 4)}), ` +
      `so these frozen features would come from random weights; ${fix}, or train from the file (training accepts a partial load)`,
  );
}
