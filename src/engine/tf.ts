/**
 * The one tfjs-core instance simtrip uses. Modules import tf from here so that a backend package
 * loaded by the engine (tfjs-node, the oneDNN addon) registers into the same engine they compute on.
 */
export * as tf from '@tensorflow/tfjs-core';
