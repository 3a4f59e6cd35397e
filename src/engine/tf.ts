/**
 * The one tfjs-core instance simtrip uses. Modules import tf from here so that a backend package
 * loaded by the engine (tfjs-node, the oneDNN addon) registers into the same engine they compute on.
 */
// tfjs-core leaves gradient registration to the umbrella package, which simtrip does not use.
import '@tensorflow/tfjs-core/dist/register_all_gradients.js';

export * as tf from '@tensorflow/tfjs-core';
