/**
 * SGD with momentum and weight decay, PyTorch semantics (tfjs optimisers have no weight decay and no
 * parameter groups):
 *   d = g + wd * w;  buf = momentum * buf + d  (buf = d on the first step);  w -= lr * buf
 * Each parameter group (e.g. the fixed-lr predictor) gets its own lr at every step.
 *
 * Where the backend has the fused kernel (onednn: one native pass per parameter) it runs that; else
 * the same arithmetic as standard tfjs ops, in the same float32 order, so both agree bit for bit.
 *
 * A step may be gated: `gate` is a scalar tensor, 1 to apply the update and anything else to leave
 * every weight and buffer as it is. Engines with a gated kernel (cuda) decide on the device, so the
 * update is queued before the step's loss is read; elsewhere the gate is read first, which costs
 * nothing where tensors live in host memory. A gated-off first step on the device leaves zero momentum
 * buffers, which the next step treats exactly as absent ones (momentum * 0 + d = d).
 */
import { tf } from '../engine/tf.js';
import { SGD_UPDATE, SGD_UPDATE_GATED, type SgdUpdateAttrs, canRunKernel } from '../engine/custom_kernels.js';
import type { Param } from '../model/params.js';

export interface SgdOptions {
  momentum: number;
  weightDecay: number;
  /** Also decay BatchNorm affine parameters and biases (PyTorch's default when all params share a group). */
  decayNormAndBias: boolean;
}

export class Sgd {
  /** Momentum buffers by parameter name; created on the first step, as in PyTorch. */
  readonly buffers = new Map<string, tf.Variable>();

  constructor(
    private readonly params: Param[],
    private readonly opts: SgdOptions,
  ) {}

  /**
   * Applies one update; `grads` maps tfjs variable names to gradients; `lr` gives each group's lr;
   * `gate` (optional) applies it only where it holds 1.
   */
  step(grads: tf.NamedTensorMap, lr: (group: string) => number, gate?: tf.Scalar): void {
    const onDevice = gate !== undefined && canRunKernel(SGD_UPDATE_GATED);
    if (gate && !onDevice && gate.dataSync()[0] !== 1) return;
    tf.tidy(() => {
      const fused = canRunKernel(SGD_UPDATE);
      for (const p of this.params) {
        const g = grads[p.variable.name];
        if (!g) continue;
        const wd = p.normOrBias && !this.opts.decayNormAndBias ? 0 : this.opts.weightDecay;
        if ((fused || onDevice) && p.variable.dtype === 'float32' && g.dtype === 'float32') {
          this.fusedStep(p, g, wd, lr(p.group), onDevice ? gate : undefined);
          continue;
        }
        const d = wd > 0 ? tf.add(g, tf.mul(p.variable, wd)) : g;
        let buf = this.buffers.get(p.name);
        if (!buf) {
          buf = tf.variable(d, false, `${p.variable.name}/momentum`);
          this.buffers.set(p.name, buf);
        } else {
          buf.assign(tf.add(tf.mul(buf, this.opts.momentum), d));
        }
        p.variable.assign(tf.sub(p.variable, tf.mul(buf, lr(p.group))));
      }
    });
  }

  /** One native pass: the kernel returns the new weights and momentum buffer (see kernels/sgd.ts). */
  private fusedStep(p: Param, g: tf.Tensor, wd: number, lr: number, gate?: tf.Scalar): void {
    const buf = this.buffers.get(p.name);
    const attrs: SgdUpdateAttrs = { lr, momentum: this.opts.momentum, weightDecay: wd > 0 ? wd : 0, first: !buf };
    const inputs: tf.NamedTensorMap = buf ? { w: p.variable, g, buf } : { w: p.variable, g };
    if (gate) inputs.gate = gate;
    const kernel = gate ? SGD_UPDATE_GATED : SGD_UPDATE;
    const [newW, newBuf] = tf.engine().runKernel(kernel, inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor[];
    if (buf) buf.assign(newBuf!);
    else this.buffers.set(p.name, tf.variable(newBuf!, false, `${p.variable.name}/momentum`));
    p.variable.assign(newW!);
  }

  /** Restores buffers saved by a checkpoint (by parameter name). */
  loadBuffers(values: Map<string, tf.Tensor>): void {
    for (const p of this.params) {
      const v = values.get(p.name);
      if (!v) continue;
      this.buffers.get(p.name)?.dispose();
      this.buffers.set(p.name, tf.variable(v, false, `${p.variable.name}/momentum`));
    }
  }

  dispose(): void {
    for (const b of this.buffers.values()) b.dispose();
    this.buffers.clear();
  }
}
