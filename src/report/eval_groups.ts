/**
 * A run's evaluations as the report shows them: the records (src/eval/records.ts) grouped by what
 * they evaluated (encoder, data, protocol, seed), one section and one label-fraction chart per group,
 * one confusion map per record. The group the report leads with (and the comparison uses) is the
 * run's newest checkpoint on its own training data. eval*.json files of older simtrip versions are
 * shown too, each as a group of its own.
 */
import { createHash } from 'node:crypto';
import type { EvalReport } from '../eval/evaluate.js';
import type { EvalResult } from '../eval/protocols.js';
import type { EncoderKey, EvalRecord } from '../eval/records.js';
import { canonicalJson } from '../util/values.js';

/** The fields of an eval report the summary and charts use: a record group provides them as well. */
export type EvalView = Pick<
  EvalReport,
  'encoder' | 'data' | 'protocol' | 'feature_dim' | 'train_samples' | 'val_samples' | 'test_samples' | 'class_names' | 'groups' | 'features' | 'engine' | 'results'
>;

export interface RunEval {
  /** Names the group's charts (label_fraction-<id>.png); stable while its key is. */
  id: string;
  /** The section title. */
  title: string;
  report: EvalView;
  /** The records behind report.results, in the same order; absent for an older simtrip's eval*.json. */
  records?: EvalRecord[];
  /** The older simtrip's file this group was read from. */
  file?: string;
  other_data?: EvalRecord['other_data'];
  /** The group's UMAP and neighbour grid (SVG), as its newest record that has them keeps them. */
  pictures?: { umap?: string; neighbours?: string };
}

function encoderTitle(encoder: EncoderKey, step?: boolean): string {
  if (encoder.kind === 'checkpoint') return `checkpoint ${encoder.file}${step === false ? '' : ` at step ${encoder.step}`}`;
  return encoder.kind === 'weights' ? `weights ${encoder.file}` : 'random initialisation';
}

/** Linear results by label fraction, then kNN. */
function byResult(a: EvalResult, b: EvalResult): number {
  const rank = (r: EvalResult) => (r.classifier === 'linear' ? r.label_fraction : 2);
  return rank(a) - rank(b);
}

function groupOf(records: EvalRecord[]): RunEval {
  const sorted = [...records].sort((a, b) => byResult(a.result, b.result) || a.created.localeCompare(b.created));
  const newest = [...records].sort((a, b) => b.created.localeCompare(a.created))[0]!;
  const { key } = newest;
  const id = `${key.encoder.kind === 'checkpoint' ? `step${key.encoder.step}` : key.encoder.kind}-${createHash('sha256')
    .update(canonicalJson({ encoder: key.encoder, data: key.data, protocol: newest.protocol, seed: key.seed }))
    .digest('hex')
    .slice(0, 8)}`;
  const other = newest.other_data;
  return {
    id,
    title: `${encoderTitle(key.encoder)}, ${newest.protocol} protocol${other ? ' (other data than trained on)' : ''}`,
    report: {
      encoder: newest.encoder,
      data: newest.data,
      protocol: newest.protocol,
      feature_dim: newest.feature_dim,
      train_samples: newest.train_samples,
      val_samples: newest.val_samples,
      test_samples: newest.test_samples,
      class_names: newest.class_names,
      groups: newest.groups,
      features: newest.features,
      engine: newest.engine,
      results: sorted.map((r) => r.result),
    },
    records: sorted,
    other_data: other,
  };
}

/** Lead: checkpoints on their own training data (newest step first), then on other data, then weights and random init. */
function rank(group: RunEval): [number, number] {
  const encoder = group.records![0]!.key.encoder;
  if (encoder.kind === 'checkpoint') return [group.other_data ? 1 : 0, -encoder.step];
  return [encoder.kind === 'weights' ? 2 : 3, 0];
}

/** The records in groups of one encoder, data, evaluation protocol and seed, leading group first; then the older files. */
export function evalGroups(records: readonly EvalRecord[], legacy: readonly { file: string; report: EvalReport }[] = []): RunEval[] {
  const byKey = new Map<string, EvalRecord[]>();
  for (const r of records) {
    const k = canonicalJson({ encoder: r.key.encoder, data: r.key.data, protocol: r.protocol, seed: r.key.seed });
    byKey.set(k, [...(byKey.get(k) ?? []), r]);
  }
  const groups = [...byKey.values()].map(groupOf);
  const newestOf = (g: RunEval) => g.records!.reduce((t, r) => (r.created > t ? r.created : t), '');
  groups.sort((a, b) => {
    const [ra, sa] = rank(a);
    const [rb, sb] = rank(b);
    return ra - rb || sa - sb || newestOf(b).localeCompare(newestOf(a));
  });
  const older = legacy.map(({ file, report }) => ({
    id: `legacy-${file.replace(/\.json$/, '').replace(/[^A-Za-z0-9._-]/g, '_')}`,
    title: `${file} (written by an older simtrip)`,
    report,
    file,
  }));
  return [...groups, ...older];
}

/** The file-name stem of a result's confusion chart: confusion-<record id>, or for an older file confusion-<group>-<result>. */
export function confusionChartName(group: RunEval, index: number): string {
  const record = group.records?.[index];
  if (record) return `confusion-${record.id}`;
  const r = group.report.results[index]!;
  return `confusion-${group.id}-${r.classifier === 'linear' ? `linear-${Number((r.label_fraction * 100).toPrecision(6))}` : 'knn'}`;
}
