/**
 * Async reads (tensor.data()) on the CUDA engine: the copy is queued when the read starts and the read
 * completes once that copy has run, polling without draining the stream. The host build can answer
 * "not yet" to the polls, so the waiting path runs here: a tensor disposed while its read waits must
 * still read back its values, and its memory must be freed.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { tf } from '../../../src/engine/tf.js';
import { roundToFloat16 } from '../../../src/io/float16.js';
import type { CudaAddon, HostEmulation } from '../../../src/engine/cuda/native.js';
import { CUDA_HOST, hostAddon, loadCudaHost } from './helpers.js';
import { roundToHalf } from '../../../src/ops/fp16_round.js';

const load = await loadCudaHost();
const addon = () => hostAddon() as CudaAddon & HostEmulation;

afterEach(() => {
  if (load.ok) addon().emulate('clear');
});

describe.skipIf(!load.ok)('async reads on the CUDA host build', () => {
  it('a tensor disposed while its read waits for the copy still reads back, and its memory is freed', async () => {
    await tf.setBackend(CUDA_HOST);
    const before = addon().memory().inUse;
    const x = tf.tensor1d([1.5, -2, 3]);
    addon().emulate('pendingPolls', 5);
    addon().resetCounters();
    const read = x.data();
    x.dispose();
    expect(addon().memory().inUse).toBe(before);
    expect(Array.from(await read)).toEqual([1.5, -2, 3]);
    const c = addon().counters();
    expect(c.calls.readDone).toBe(6);
    expect(c).toMatchObject({ asyncReads: 1, syncs: 0, eventWaits: 0, downloads: 0 });
  });

  it('reads halves and booleans the same way, and leaves nothing behind', async () => {
    await tf.setBackend(CUDA_HOST);
    const h = roundToHalf(tf.tensor1d([0.1, 65504, -1e-8]));
    const b = tf.greater(tf.tensor1d([1, -1]), 0);
    addon().emulate('pendingPolls', 2);
    const [hv, bv] = await Promise.all([h.data(), b.data()]);
    expect(Array.from(hv)).toEqual([0.1, 65504, -1e-8].map(roundToFloat16));
    expect(Array.from(bv)).toEqual([1, 0]);
    tf.dispose([h, b]);
  });
});

