#!/usr/bin/env bash
# Prepares .gpu/ (git-ignored) for one run of the CUDA engine on the GPU machine of the `device` tool:
#  - node and the N-API headers (../shared/gpu/pack.sh, or $SIMTRIP_SHARED_GPU/pack.sh);
#  - slim bundles (no source maps) of the CLI, check:cuda and the benchmarks in .gpu/dist;
#  - the GPU addon built here with nvcc for sm_90 only (H100/H200; a fifth of the all-architecture
#    size) and the oneDNN addon, compressed in .gpu/addons.tar.xz (cuda-run.sh unpacks them into
#    build/Release): the tracked tree (fixtures included) and .gpu must stay under the 64 MiB a device
#    run carries;
#  - oneDNN and the libraries it loads (.gpu/libs.tar.xz): check:cuda's reference engine;
#  - scripts/device/cuda-run.sh as .gpu/cuda-run.sh.
# Then run, with the device tool:  command "bash .gpu/cuda-run.sh", carry [".gpu"].
set -euo pipefail
root=$(git rev-parse --show-toplevel)
cd "$root"
shared=${SIMTRIP_SHARED_GPU:-$root/../shared/gpu}
bash "$shared/pack.sh"
node scripts/build-native.mjs >/dev/null
test -f build/Release/simtrip_cuda.node || { echo "pack: the GPU addon did not build (see build/simtrip_cuda.status.json)" >&2; exit 1; }
test -f build/Release/simtrip_onednn.node || { echo "pack: the oneDNN addon did not build (apt-get install libdnnl-dev)" >&2; exit 1; }
rm -rf .gpu/dist .gpu/build
SIMTRIP_CUDA_ARCHS=90 SIMTRIP_CUDA_BUILD_DIR=.gpu/build node scripts/build-cuda.mjs gpu
test -f .gpu/build/Release/simtrip_cuda.node || { echo "pack: the sm_90 GPU addon did not build" >&2; exit 1; }
cp build/Release/simtrip_onednn.node .gpu/build/Release/
tar -C .gpu/build/Release -cJf .gpu/addons.tar.xz simtrip_cuda.node simtrip_onednn.node
rm -rf .gpu/build
node scripts/bundle.mjs --outdir .gpu/dist --no-sourcemap --self-contained \
  --entries simtrip,augment_worker,check/cuda,bench/train_throughput,bench/compare,bench/e2e_train
libs=()
for lib in libdnnl.so.2 libOpenCL.so.1 libgomp.so.1; do
  f=$(ldconfig -p | awk -v l="$lib" '$1 == l { print $NF; exit }')
  test -n "$f" || { echo "pack: $lib not found" >&2; exit 1; }
  libs+=("$f" "$(readlink -f "$f")")
done
tmp=$(mktemp -d)
cp -P "${libs[@]}" "$tmp"/
tar -C "$tmp" -cJf .gpu/libs.tar.xz .
rm -rf "$tmp"
cp scripts/device/cuda-run.sh .gpu/
du -sh .gpu | sed 's/^/pack: /'
echo "pack: with the tracked tree: $(( ( $(du -sb .gpu | cut -f1) + $(git ls-files -z | xargs -0 du -cb | tail -1 | cut -f1) ) / 1048576 )) MiB of the 64 MiB a run carries"
echo 'pack: device command "bash .gpu/cuda-run.sh", carry [".gpu"]'
