#!/usr/bin/env bash
# The CUDA engine on the GPU machine, one prepared run (prepare it with scripts/device/pack.sh). Parts,
# in this order (correctness first, then the fp32 benchmark, then AMP, then the rest):
#   doctor      the engines, the CUDA engine's self-check;
#   check       check:cuda: every kernel, full steps against oneDNN, mixed16, probe, golden fixtures, TF32;
#   bench       our step against PyTorch's on the same card, fp32: ResNet-18 CIFAR b512, ResNet-50 224 px b64;
#   amp         the same two, mixed16 against PyTorch AMP;
#   sanitizer   the kernel checks on small shapes under compute-sanitizer (memcheck, racecheck, synccheck,
#               initcheck): the emulator runs a block's threads one at a time and zeroes shared memory,
#               so a race or an uninitialised read passes there silently;
#   profile     one profiled step: host fallbacks, GPU memory;
#   e2e         `simtrip train` with and without augmentation workers;
#   papers      (only when asked for) the scale-* preset runs.
# A failing part never stops the run. Each part gets a timeout that also fits what is left of
# CUDA_RUN_BUDGET (default 560 s); a part that no longer fits is skipped and says so. cuDNN's algorithm
# searches are kept across the parts' processes (SIMTRIP_CUDA_CONV_PLANS). Logs go to a work folder;
# $OUT gets at most 8 files: summary.txt, check.json, sanitizer.txt, conv-plans.txt and logs.tar.gz
# (everything). The summary is printed last.
#   CUDA_RUN_PARTS="doctor check bench amp sanitizer profile e2e" selects parts (default: all but papers);
#   CUDA_RUN_CHECK_BUDGET (default 300): seconds after which check:cuda starts no further part;
#   CUDA_RUN_DRY=1 prints each part's command and timeout instead of running it (no GPU needed).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/simtrip-out}
WORK=${CUDA_RUN_WORK:-/tmp/simtrip-run}
DRY=${CUDA_RUN_DRY:-0}
BUDGET=${CUDA_RUN_BUDGET:-560}
mkdir -p "$OUT" "$WORK"
parts=${CUDA_RUN_PARTS:-doctor check bench amp sanitizer profile e2e}
has() { [[ " $parts " == *" $1 "* ]]; }
D=.gpu/dist
summary=()
note() { summary+=("$1"); echo "== $1"; }
left() { echo $(( BUDGET - SECONDS )); }

# run NAME SECONDS LOG CMD...: CMD under a timeout of SECONDS, or of what is left of the budget less a
# reserve for the summary, its output in $WORK/LOG; $rc is its status. Skipped when under 20 s remain:
# then `ran` is false and the part notes nothing more.
ran=1
rc=0
run() {
  local name=$1 want=$2 log=$3; shift 3
  local limit=$(( $(left) - 15 ))
  (( want < limit )) && limit=$want
  ran=1
  rc=0
  if (( limit < 20 )); then
    note "$name: skipped, $(left) s of the $BUDGET s budget left"
    ran=0
  elif [ "$DRY" = 1 ]; then
    echo "dry-run $name (timeout $limit s): $*" | tee "$WORK/$log"
  else
    timeout "$limit" "$@" > "$WORK/$log" 2>&1
    rc=$?
  fi
}

if [ "$DRY" != 1 ]; then
  source .gpu/on-device.sh
  mkdir -p build/Release && tar -xJf .gpu/addons.tar.xz -C build/Release
  mkdir -p /tmp/simtrip-libs && tar -xJf .gpu/libs.tar.xz -C /tmp/simtrip-libs
  export LD_LIBRARY_PATH=/tmp/simtrip-libs:${LD_LIBRARY_PATH:-}
fi
export SIMTRIP_CUDA_CONV_PLANS=$WORK/conv-plans.txt
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader > "$WORK/gpu.txt" 2>&1
note "gpu: $(cat "$WORK/gpu.txt")"

if has doctor; then
  run doctor 60 doctor.txt node $D/simtrip.js doctor
  (( ran )) && note "doctor: $(grep -E '^  (ok|no) +cuda' "$WORK/doctor.txt")"
fi
if has check; then
  # check:cuda starts no part after its own budget, so its table and JSON come back either way; the
  # rest of the run keeps what the benchmarks need.
  check_budget=${CUDA_RUN_CHECK_BUDGET:-300}
  (( check_budget > $(left) - 120 )) && check_budget=$(( $(left) - 120 ))
  (( check_budget < 10 )) && check_budget=10
  run check $(( check_budget + 60 )) check.txt node $D/check/cuda.js --budget "$check_budget" --out "$WORK/check.json"
  if (( ran )); then
    note "check:cuda exit $rc: $(tail -1 "$WORK/check.txt")"
    grep -E '^FAIL' "$WORK/check.txt" | head -20
  fi
fi
bench() { # label, flags...
  local label=$1; shift
  run "$label" 240 "bench-$label.txt" node $D/bench/compare.js "$@"
  (( ran )) && note "$label: $(grep -E '^ours: cuda' "$WORK/bench-$label.txt" | awk '{print $(NF-3), "img/s"}') ours, $(grep -E '^pytorch' "$WORK/bench-$label.txt" | awk '{print $(NF-3), "img/s"}') pytorch; $(grep -E '^ratio' "$WORK/bench-$label.txt" | tr '\n' ';')"
}
if has bench; then
  bench r18-b512-fp32 --engine cuda --arch resnet18 --size 32 --batch 512 --steps 20 --warmup 5
  bench r50-224-b64-fp32 --engine cuda --arch resnet50 --size 224 --batch 64 --steps 10 --warmup 3
fi
if has amp; then
  bench r18-b512-amp --engine cuda --precision mixed16 --arch resnet18 --size 32 --batch 512 --steps 20 --warmup 5
  bench r50-224-b64-amp --engine cuda --precision mixed16 --arch resnet50 --size 224 --batch 64 --steps 10 --warmup 3
fi
if has sanitizer; then
  sanitizer=$(command -v compute-sanitizer || ls "${CUDA_HOME:-/usr/local/cuda}/bin/compute-sanitizer" 2>/dev/null)
  if [ -z "$sanitizer" ] && [ "$DRY" != 1 ]; then
    note "sanitizer: compute-sanitizer not found (CUDA toolkit's bin)"
  else
    for tool in memcheck racecheck synccheck initcheck; do
      # memcheck watches every kernel, cuDNN's and cuBLAS' included; the others only ours (simtrip::cuda).
      only=(); [ "$tool" = memcheck ] || only=(--kernel-name kns=simtrip)
      run "sanitizer-$tool" 45 "sanitizer-$tool.txt" "${sanitizer:-compute-sanitizer}" --tool "$tool" "${only[@]}" --print-limit 20 --error-exitcode 99 \
        node $D/check/cuda.js --only kernels --scale small
      (( ran )) && note "sanitizer $tool: exit $rc, $(grep -m1 -E 'ERROR SUMMARY' "$WORK/sanitizer-$tool.txt" || echo 'no summary') $(tail -1 "$WORK/sanitizer-$tool.txt" | grep -oE '[0-9]+ of [0-9]+ checks.*' || true)"
    done
  fi
fi
if has profile; then
  run profile 200 profile.txt node $D/bench/train_throughput.js --engine cuda --arch resnet18 --batch 512 --steps 3 --profile 1
  (( ran )) && note "profile r18 b512: $(grep -E '^fallbacks' "$WORK/profile.txt"); $(grep -E '^GPU memory' "$WORK/profile.txt")"
fi
if has e2e; then
  run e2e 300 e2e.txt node $D/bench/e2e_train.js --engine cuda --arch resnet18 --size 32 --batch 512 --steps 24 --workers 0,8
  (( ran )) && note "e2e r18 b512: $(grep -E '^data.workers' "$WORK/e2e.txt" | awk '{print "workers", $2, $3, "img/s"}' | tr '\n' ';')"
fi
if has papers; then
  # img/s after the first log window, the run's wall time, and the GPU memory peak, from metrics.jsonl.
  summarize() {
    node -e '
      const lines = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map(JSON.parse).filter((l) => l.kind === "train");
      const steady = lines.length > 1 ? lines.slice(1) : lines;
      const ips = steady.reduce((a, l) => a + l.img_per_s, 0) / steady.length;
      const peak = Math.max(...lines.map((l) => l.gpu_peak_mib ?? 0));
      process.stdout.write(`${ips.toFixed(0)} img/s after warm-up, GPU peak ${(peak / 1024).toFixed(2)} GiB`);
    ' "$1"
  }
  for c in scale-pathology-simtriplet scale-ham10000-bit-simsiam; do
    t0=$SECONDS
    run "$c" 590 "$c.txt" node $D/simtrip.js train -c configs/$c.yaml --run-dir /tmp/simtrip-runs/$c
    (( ran )) && note "$c: exit $rc in $(( SECONDS - t0 )) s (data generation included): $(summarize /tmp/simtrip-runs/$c/metrics.jsonl 2>/dev/null)"
  done
  run step-simtriplet 200 step-simtriplet.txt node $D/bench/train_throughput.js --engine cuda --precision mixed16 --method simtriplet --arch resnet50 --size 128 --batch 128 --steps 5
  (( ran )) && note "step only, SimTriplet ResNet-50 128 px b128 mixed16: $(grep -E '^throughput' "$WORK/step-simtriplet.txt")"
  run step-bit 200 step-bit.txt node $D/bench/train_throughput.js --engine cuda --arch bit-r50x1 --norm batch --size 224 --batch 128 --steps 5
  (( ran )) && note "step only, BiT-R50x1 BN 224 px b128: $(grep -E '^throughput' "$WORK/step-bit.txt")"
  run pytorch-r50-128 300 pytorch-r50-128.txt python3 bench/pytorch_simsiam.py --device cuda --amp 1 --arch resnet50 --size 128 --batch 128 --steps 10
  (( ran )) && note "pytorch AMP ResNet-50 128 px b128, two views: $(tail -1 "$WORK/pytorch-r50-128.txt")"
fi

{
  echo "==== summary ($(date -u +%FT%TZ), $SECONDS s)"
  printf '%s\n' "${summary[@]}"
} > "$WORK/summary.txt"
cat "$WORK"/sanitizer-*.txt > "$WORK/sanitizer.txt" 2>/dev/null || true
for f in summary.txt check.json sanitizer.txt conv-plans.txt; do [ -s "$WORK/$f" ] && cp "$WORK/$f" "$OUT/"; done
tar -czf "$OUT/logs.tar.gz" -C "$WORK" . 2>/dev/null
echo
cat "$WORK/summary.txt"
