/**
 * sharp (libvips) loaded on first use rather than at start-up: commands that touch no image (doctor,
 * config, weights inspect, training on synthetic or CIFAR binary data) then run where its native
 * library is absent, e.g. a GPU machine that was sent only simtrip's bundle.
 */
import type SharpModule from 'sharp';

export type Sharp = typeof SharpModule;

/** sharp is not installed or its native library does not load. */
export class SharpUnavailable extends Error {}

let loaded: Promise<Sharp> | undefined;

export function loadSharp(): Promise<Sharp> {
  loaded ??= import('sharp').then(
    (m) => (m as unknown as { default: Sharp }).default ?? (m as unknown as Sharp),
    (e: Error) => {
      loaded = undefined;
      throw new SharpUnavailable(`sharp could not be loaded (${e.message.split('\n')[0]}); it decodes images and draws PNG charts: run npm ci in simtrip's folder`);
    },
  );
  return loaded;
}
