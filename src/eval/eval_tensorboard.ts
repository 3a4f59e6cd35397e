/**
 * An evaluation in the run's TensorBoard folder (<run>/tb/), beside the training's events: at the
 * evaluated checkpoint's step (0 for weights or a random initialisation), each probe's accuracy,
 * balanced accuracy and macro F1 as scalars and its confusion matrix as an image; the UMAP and the
 * nearest-neighbour grid as images; and the features in the embedding projector, with their metadata
 * and a sprite of their images.
 *
 * Tags tell evaluations at one step apart (evalScope: other data, weights or random init, the logo
 * protocol), and the same evaluation written again replaces its values (the writer's `drop`), as its
 * records are replaced. The file starts no TensorBoard session: that would make TensorBoard drop the
 * training's events from this step on.
 */
import type { Config } from '../config/schema.js';
import { svgToPng } from '../report/png.js';
import { confusionSvg } from '../report/run_report.js';
import { evalScope, resultTagName, scalarsOfEvalResults, TAGS } from '../report/tensorboard/tags.js';
import { TensorBoardWriter } from '../report/tensorboard/writer.js';
import { SharpUnavailable } from '../util/sharp.js';
import type { EvalReport } from './evaluate.js';
import type { EvalResult } from './protocols.js';
import { evalRecords } from './records.js';

export interface WrittenEvalEvents {
  /** The event file written. */
  file: string;
  step: number;
  scalars: number;
  images: string[];
  /** The projector embedding's name, when the report carried the features (EvalReport.views). */
  projector?: string;
  /** Set when no image could be drawn (sharp is not installed). */
  note?: string;
}

/** The step, tag scope and projector name of an evaluation (see the module comment). */
function placeOf(report: EvalReport, cfg: Config, home: string) {
  const source = report.encoder_source;
  const step = source.kind === 'checkpoint' ? source.step : 0;
  const record = evalRecords(report, cfg, home)[0];
  const otherData = record?.other_data ? record.key.data.hash.slice(0, 8) : undefined;
  const base = { encoder: source.kind, otherData };
  const resultName = (r: EvalResult) => resultTagName(r, evalScope({ ...base, protocol: r.classifier === 'linear' ? r.protocol : undefined }));
  const projector = ['features', source.kind === 'checkpoint' ? `step${step}` : source.kind, otherData ? `data-${otherData}` : ''].filter((p) => p).join('-');
  return { step, resultName, viewScope: evalScope(base), projector };
}

/** Writes `report` (with the features' views when it has them) to `<home>/tb/`. */
export async function writeEvalEvents(home: string, report: EvalReport, cfg: Config): Promise<WrittenEvalEvents> {
  const { step, resultName, viewScope, projector } = placeOf(report, cfg, home);
  const scalars = scalarsOfEvalResults(report.results, resultName);
  const drawings: Array<[string, string]> = report.results.map((r) => [TAGS.confusion(resultName(r)), confusionSvg(r, report.class_names).svg]);
  if (report.views) drawings.push([TAGS.umap(viewScope), report.views.umap.chart.svg], [TAGS.neighbours(viewScope), report.views.neighbours.chart.svg]);
  // Drawn before the file is opened: a failure leaves nothing half written.
  let images: Array<[string, Buffer]> = [];
  let note: string | undefined;
  try {
    for (const [tag, svg] of drawings) images.push([tag, await svgToPng(svg)]);
  } catch (err) {
    if (!(err instanceof SharpUnavailable)) throw err;
    images = [];
    note = `no images (${err.message})`;
  }
  const tags = [...scalars.map(([tag]) => tag), ...drawings.map(([tag]) => tag)];
  // One write at close: a training run resuming meanwhile never reads this file half written.
  const writer = await TensorBoardWriter.openRun(home, { sessionStart: false, drop: { step, tags }, flushBytes: Number.POSITIVE_INFINITY, flushSeconds: 24 * 3600 });
  try {
    writer.scalars(step, scalars);
    for (const [tag, png] of images) writer.image(tag, step, png);
    if (report.views) await writer.projector({ name: projector, ...report.views.projector });
  } finally {
    writer.close();
  }
  return {
    file: writer.file,
    step,
    scalars: scalars.length,
    images: images.map(([tag]) => tag),
    ...(report.views ? { projector } : {}),
    ...(note ? { note } : {}),
  };
}
