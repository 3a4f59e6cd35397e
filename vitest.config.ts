import { defineConfig } from 'vitest/config';

export default defineConfig({
  // ES-module builds first (tfjs-core's main field is its CommonJS build), as scripts/bundle.mjs does.
  resolve: { mainFields: ['module', 'main'] },
  ssr: { resolve: { mainFields: ['module', 'main'] } } as object,
  test: {
    include: ['test/**/*.test.ts'],
    // tfjs kernels are CPU-bound; forks keep each file's engine state isolated.
    pool: 'forks',
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    // Native kernels' outputs start as NaN instead of whatever memory held (src/engine/onednn/kernels/common.ts):
    // a kernel that leaves an element unwritten then fails its parity test rather than passing on zeros.
    env: { SIMTRIP_POISON_OUTPUTS: '1' },
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // One copy of tfjs: its gradients are registered from ES-module files, so core and the cpu backend
    // must come from their ES-module builds too (the same choice scripts/bundle.mjs makes for dist/).
    server: { deps: { inline: [/@tensorflow\/tfjs-core/, /@tensorflow\/tfjs-backend-cpu/] } },
  },
});
