/**
 * What the training loop asks of an engine whose tensors live on a device with its own queue of work
 * (the CUDA engine): whether reading a value waits for that queue, and staging batches ahead of their
 * step. Engines whose tensors are host memory answer "no" and do nothing.
 */
import { tf } from './tf.js';

interface DeviceBackend {
  /** True on backends whose reads wait for queued device work (CudaBackend). */
  readonly queuesOnDevice: boolean;
  stageUpload(values: Float32Array): Promise<void>;
}

function deviceBackend(): DeviceBackend | null {
  const backend = tf.backend() as Partial<DeviceBackend>;
  return backend.queuesOnDevice === true ? (backend as DeviceBackend) : null;
}

/** Whether reading a tensor of the active backend waits for work queued on a device. */
export function readsWaitForDevice(): boolean {
  return deviceBackend() !== null;
}

/**
 * Stages every array for upload where the engine can (the CUDA engine copies it into pinned memory on
 * a worker thread, so the step's upload only queues the copy to the device), and resolves with them.
 * The arrays must not change afterwards.
 */
export async function stageForUpload(arrays: Float32Array[]): Promise<Float32Array[]> {
  const backend = deviceBackend();
  if (backend) await Promise.all(arrays.map((a) => backend.stageUpload(a)));
  return arrays;
}
