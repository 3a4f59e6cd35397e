/**
 * roundToHalf(x): a float32 tensor rounded to the IEEE float16 grid, still stored as float32. tfjs has
 * no float16 dtype, so engine.precision 'mixed16' reproduces fp16 autocast by rounding at the points
 * where autocast would hold a half tensor. The rounding must be exactly IEEE round-to-nearest-even:
 * normals keep 11 significant bits, |x| < 2^-14 rounds to a multiple of 2^-24 (half subnormals),
 * |x| >= 65520 overflows to ±Inf (65504 is the largest half), NaN stays NaN and ±0 keep their sign.
 *
 * Three implementations of one kernel, chosen by the active backend:
 *  - onednn: a native loop on the bit pattern (native/onednn/eltwise.cc, registered by the onednn backend);
 *  - cpu: a JS kernel over src/io/float16.ts, the reference conversion itself;
 *  - anything else (tfjs-node, wasm, which take no custom kernels): `roundToHalfComposed`, built
 *    from standard ops only.
 *
 * Gradient: straight-through with the incoming gradient itself rounded to half. Under autocast the
 * tensor this op stands for IS a float16 tensor, so the gradient that reaches it is computed by fp16
 * kernels and stored as fp16, and the cast back to float32 (the master weights, an fp32 layer's
 * input) passes that half-valued gradient on unchanged. The cast does not zero gradients where the
 * forward overflowed or underflowed and does not scale anything: the gradient just lives on the half
 * grid, with the same overflow to Inf and flush of tiny values that dynamic loss scaling exists for.
 */
import { tf } from '../engine/tf.js';
import { roundToFloat16InPlace } from '../io/float16.js';
import { canRunKernel } from '../engine/custom_kernels.js';

/** Input x (float32); output x rounded to the half grid, float32. */
export const ROUND_TO_HALF = 'SimtripRoundToHalf';

/** Largest finite half. */
export const HALF_MAX = 65504;
/** Smallest magnitude that rounds to infinity: the midpoint between 65504 and 2^16, a tie that goes to the even 2^16. */
export const HALF_OVERFLOW = 65520;
/** Smallest positive normal half; below it the grid is the fixed subnormal step 2^-24. */
export const HALF_MIN_NORMAL = 2 ** -14;
export const HALF_MIN_SUBNORMAL = 2 ** -24;

/**
 * Veltkamp's splitting constant 2^13 + 1: with float32 round-to-nearest-even arithmetic,
 * c = a*(2^13+1); hi = c - (c - a) is `a` rounded to 24 - 13 = 11 significant bits, ties to even,
 * for any a whose product does not overflow. No exponent has to be extracted (log2 and pow are
 * inexact on some backends); checked against the bit-level reference over every float32 pattern.
 */
const SPLITTER = 8193;
/**
 * Adding 0.75 puts |x| < 2^-14 into [0.5, 1), where float32's spacing is 2^-24: the sum is rounded to
 * the half-subnormal grid, ties to even (0.75's significand is even), and subtracting 0.75 is exact.
 */
const SUBNORMAL_SHIFTER = 0.75;

/**
 * The rounding from standard ops only, so it runs on every backend; bit-exact (NaN payloads aside)
 * where float32 arithmetic is IEEE round-to-nearest-even, checked over all 2^32 patterns with
 * float32-emulating arithmetic and in the tests on the cpu and onednn backends.
 */
function composedForward(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const a = tf.abs(x);
    const c = tf.mul(a, SPLITTER);
    const normal = tf.sub(c, tf.sub(c, a));
    const subnormal = tf.sub(tf.add(a, SUBNORMAL_SHIFTER), SUBNORMAL_SHIFTER);
    // NaN fails both comparisons and flows through `normal`; Inf and huge values give NaN there but
    // take the overflow branch (where() does not mix the unselected branch in).
    let m = tf.where(tf.less(a, HALF_MIN_NORMAL), subnormal, normal);
    m = tf.where(tf.greaterEqual(a, HALF_OVERFLOW), tf.fill(x.shape, Infinity), m);
    // Sign back: neg(+0) is -0, so a negative value that flushes to zero becomes -0, as in IEEE.
    // Zeros take x*0, which is ±0 with x's sign: abs lost the sign of -0, and on a backend that
    // treats float32 subnormals as zero (TensorFlow's flush-to-zero mode) a subnormal x compares
    // equal to 0 and must come out as a zero, not as itself.
    const signed = tf.where(tf.less(x, 0), tf.neg(m), m);
    return tf.where(tf.equal(x, 0), tf.mul(x, 0), signed);
  });
}

const composed = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => ({
  value: composedForward(args[0] as tf.Tensor),
  gradFunc: (dy: tf.Tensor) => roundToHalf(dy),
}));

function checkFloat32(x: tf.Tensor): void {
  if (x.dtype !== 'float32') throw new Error(`roundToHalf: expected a float32 tensor, got ${x.dtype}`);
}

/** The standard-ops implementation, whatever the backend (exported for tests and benchmarks). */
export function roundToHalfComposed<T extends tf.Tensor>(x: T): T {
  checkFloat32(x);
  return composed(x) as T;
}

/** x rounded to the float16 grid (float32 storage); gradient: dy rounded to the grid (see above). */
export function roundToHalf<T extends tf.Tensor>(x: T): T {
  checkFloat32(x);
  if (canRunKernel(ROUND_TO_HALF, x)) {
    return tf.engine().runKernel(ROUND_TO_HALF, { x }) as T;
  }
  return composed(x) as T;
}

/** What the JS kernel needs of tfjs-backend-cpu's MathBackendCPU (kept structural: no import of it). */
interface CpuStorage {
  data: { get(id: tf.DataId): { values?: unknown } | undefined };
  makeTensorInfo(shape: number[], dtype: tf.DataType, values: Float32Array): tf.TensorInfo;
}

const cpuKernel: tf.KernelFunc = ({ inputs, backend }) => {
  const { x } = inputs as { x: tf.TensorInfo };
  const cpu = backend as unknown as CpuStorage;
  const values = cpu.data.get(x.dataId)?.values;
  if (x.dtype !== 'float32' || !(values instanceof Float32Array)) throw new Error(`${ROUND_TO_HALF}: x must be float32, got ${x.dtype}`);
  return cpu.makeTensorInfo([...x.shape], 'float32', roundToFloat16InPlace(values.slice()));
};

// Kernels and gradients are global in tfjs: registered once, when the op is first imported.
if (!tf.getKernel(ROUND_TO_HALF, 'cpu')) tf.registerKernel({ kernelName: ROUND_TO_HALF, backendName: 'cpu', kernelFunc: cpuKernel });
if (!tf.getGradient(ROUND_TO_HALF)) {
  tf.registerGradient({
    kernelName: ROUND_TO_HALF,
    gradFunc: (dy) => ({ x: () => roundToHalf(dy as tf.Tensor) }),
  });
}
