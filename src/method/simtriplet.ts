/**
 * SimTriplet (Liu et al., MICCAI 2021): SimSiam with a third view taken from a spatially adjacent
 * patch of the same slide. Same backbone, projector and predictor (and parameter names) as SimSiam, so
 * checkpoints of either load into the other.
 *
 *   x1 = view of patch P, x2 = view of a neighbour of P, x3 = second view of P
 *   loss = D(p1, z2)/2 + D(p2, z1)/2  (inter-sample)  +  D(p1, z3)/2 + D(p3, z1)/2  (intra-sample)
 *
 * As in the released code, each view goes through the encoder on its own (BatchNorm sees one view's
 * batch), and the gradient is stopped on every z.
 */
import type { tf } from '../engine/tf.js';
import { collapseStd, simtripletLoss } from './losses.js';
import type { StepOutput } from './method.js';
import { METHOD_VIEWS } from './views.js';
import { SiameseMethod, type Embedding } from './simsiam.js';

export class SimTriplet extends SiameseMethod {
  readonly name = 'simtriplet';
  /** x1 anchor, x2 neighbour, x3 second anchor view. */
  readonly viewSources = METHOD_VIEWS.simtriplet.viewSources;

  step(views: tf.Tensor4D[]): StepOutput {
    const [a, n, b] = this.embedViews(views) as [Embedding, Embedding, Embedding];
    const { loss, inter, intra } = simtripletLoss([a.p, n.p, b.p], [a.z, n.z, b.z]);
    return { loss, terms: { loss_inter: inter, loss_intra: intra }, collapseStd: collapseStd(a.z) };
  }
}
