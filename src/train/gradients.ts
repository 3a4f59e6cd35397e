/**
 * tf.variableGrads with the memory of a training step bounded the way PyTorch's autograd bounds it.
 *
 * tfjs' engine.gradients walks the tape backwards but keeps every gradient it computes and every
 * tensor a node saved for its backward until the whole pass ends, so a step's memory peaks at all
 * saved activations plus a gradient for every intermediate tensor. This walks the same tape with the
 * same gradient functions in the same order, so the numbers are identical, and frees what a node no
 * longer needs as soon as its inputs' gradients are computed: the gradients of its outputs and its
 * saved tensors. On a GPU that is the difference between fitting a batch or not; under mixed16 it
 * also lets the half-stored activations, not float32 gradients, set the peak.
 *
 * It reads tfjs-core's engine internals (the tape, startTape/endTape), which simtrip pins to 4.22.0;
 * nested gradients (a gradient inside f) go to tfjs' own implementation.
 */
import { getFilteredNodesXToY } from '@tensorflow/tfjs-core/dist/tape.js';
import { tf } from '../engine/tf.js';

interface TapeNode {
  kernelName: string;
  inputs: Record<string, tf.Tensor>;
  outputs: tf.Tensor[];
  gradient?: (dys: Array<tf.Tensor | null>) => Record<string, () => tf.Tensor>;
  saved?: tf.Tensor[];
}

interface EngineInternals {
  state: { activeTape: TapeNode[] | null; gradientDepth: number };
  scopedRun<T>(start: () => void, end: () => void, f: () => T): T;
  startTape(): void;
  endTape(): void;
  tidy<T extends tf.TensorContainer>(name: string, f: () => T): T;
}

/** Accumulated gradients by tensor id, counting how often each gradient tensor is held. */
class Accumulated {
  private readonly byId = new Map<number, tf.Tensor>();
  private readonly refs = new Map<tf.Tensor, number>();

  get(id: number): tf.Tensor | undefined {
    return this.byId.get(id);
  }

  set(id: number, t: tf.Tensor): void {
    const old = this.byId.get(id);
    if (old) this.unref(old);
    this.byId.set(id, t);
    this.refs.set(t, (this.refs.get(t) ?? 0) + 1);
  }

  take(id: number): tf.Tensor | undefined {
    const t = this.byId.get(id);
    if (t) {
      this.byId.delete(id);
      this.unref(t);
    }
    return t;
  }

  holds(t: tf.Tensor): boolean {
    return (this.refs.get(t) ?? 0) > 0;
  }

  private unref(t: tf.Tensor): void {
    const n = (this.refs.get(t) ?? 0) - 1;
    if (n > 0) this.refs.set(t, n);
    else this.refs.delete(t);
  }
}

export interface TrainingGrads {
  value: tf.Scalar;
  grads: tf.NamedTensorMap;
}

/** The gradients of the scalar f() with respect to the trainable variables in `vars`, by variable name. */
export function trainingGrads(f: () => tf.Scalar, vars: tf.Variable[]): TrainingGrads {
  const engine = tf.engine() as unknown as EngineInternals;
  if (engine.state.gradientDepth > 0) return tf.variableGrads(f, vars);
  const xs = vars.filter((v) => v.trainable);
  if (xs.length === 0) throw new Error('trainingGrads: none of the variables is trainable');
  const y = engine.scopedRun(
    () => engine.startTape(),
    () => engine.endTape(),
    () => engine.tidy('forward', f),
  );
  if (y.rank !== 0) throw new Error(`trainingGrads: f must return a scalar, got rank ${y.rank}`);
  const tape = engine.state.activeTape ?? [];
  const path = getFilteredNodesXToY(tape as never, xs, y) as unknown as TapeNode[];
  return engine.tidy('backward', () => {
    const acc = new Accumulated();
    acc.set(y.id, tf.onesLike(y));
    // Frees a gradient nothing refers to any more (one handed on unchanged lives on).
    const release = (t: tf.Tensor) => {
      if (!acc.holds(t)) t.dispose();
    };
    for (let i = path.length - 1; i >= 0; i--) {
      const node = path[i]!;
      const dys = node.outputs.map((o) => acc.get(o.id) ?? null);
      if (!node.gradient) throw new Error(`Cannot compute gradient: gradient function not found for ${node.kernelName}.`);
      const inputGradients = node.gradient(dys);
      for (const name in node.inputs) {
        if (!(name in inputGradients)) throw new Error(`Cannot backprop through input ${name}. Available gradients found: ${Object.keys(inputGradients)}.`);
        const dx = engine.tidy('grad', () => inputGradients[name]!());
        const x = node.inputs[name]!;
        if (dx.dtype !== 'float32') throw new Error(`Error in gradient for op ${node.kernelName}. The gradient of input ${name} must have 'float32' dtype, but has '${dx.dtype}'`);
        if (!tf.util.arraysEqual(dx.shape, x.shape)) {
          throw new Error(`Error in gradient for op ${node.kernelName}. The gradient of input '${name}' has shape '${dx.shape}', which does not match the shape of the input '${x.shape}'`);
        }
        const current = acc.get(x.id);
        if (current === undefined) {
          acc.set(x.id, dx);
          continue;
        }
        acc.set(x.id, tf.add(current, dx));
        release(current);
        // An output's gradient passed through unchanged is released with the outputs below.
        if (!dys.includes(dx)) release(dx);
      }
      // The node is done: no other node reads its outputs' gradients or its saved tensors.
      for (const o of node.outputs) {
        const g = acc.take(o.id);
        if (g) release(g);
      }
      for (const t of node.saved ?? []) t.dispose();
      node.saved = [];
    }
    const grads: tf.NamedTensorMap = {};
    for (const v of xs) {
      const g = acc.get(v.id);
      if (g) grads[v.name] = g;
    }
    for (const node of tape) for (const t of node.saved ?? []) t.dispose();
    engine.state.activeTape = null;
    return { value: y, grads };
  });
}
