/** Shared test set-up: the pure-JS cpu backend, deterministic and available everywhere. */
import '@tensorflow/tfjs-backend-cpu';
import { tf } from '../src/engine/tf.js';

export async function useCpuBackend(): Promise<void> {
  await tf.setBackend('cpu');
  await tf.ready();
}

/** ||a - b|| / ||b||, the parity metric used against the golden fixtures. */
export { relativeError } from '../src/check/compare.js';
