#!/usr/bin/env bash
# The CUDA engine on the GPU machine, one prepared run (prepare it with scripts/device/pack.sh):
#   1. doctor;  2. check:cuda (every kernel, full SimSiam steps on ResNet-18/50 against oneDNN, the
#   golden fixtures, the TF32 error);  3. our step against PyTorch's on the same card, ResNet-18 CIFAR
#   batch 512 and ResNet-50 224 px batch 64, fp32 (and mixed16 with CUDA_RUN_AMP=1);  4. the
#   profile's host fallbacks;  5. end-to-end `simtrip train` with and without augmentation workers.
# Logs and JSON go to $OUT; the summary table is printed last.
#   CUDA_RUN_PARTS="doctor check bench profile e2e" selects parts.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/simtrip-out}
mkdir -p "$OUT"
parts=${CUDA_RUN_PARTS:-doctor check bench profile e2e}
has() { [[ " $parts " == *" $1 "* ]]; }
source .gpu/on-device.sh
mkdir -p build/Release && tar -xJf .gpu/addons.tar.xz -C build/Release
mkdir -p /tmp/simtrip-libs && tar -xJf .gpu/libs.tar.xz -C /tmp/simtrip-libs
export LD_LIBRARY_PATH=/tmp/simtrip-libs:${LD_LIBRARY_PATH:-}
D=.gpu/dist
summary=()
note() { summary+=("$1"); echo "== $1"; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader > "$OUT/gpu.txt" 2>&1
note "gpu: $(cat "$OUT/gpu.txt")"

if has doctor; then
  node $D/simtrip.js doctor > "$OUT/doctor.txt" 2>&1
  note "doctor: $(grep -E '^  (ok|no) +cuda' "$OUT/doctor.txt")"
fi
if has check; then
  timeout 420 node $D/check/cuda.js --out "$OUT/check.json" > "$OUT/check.txt" 2> "$OUT/check.log"
  rc=$?
  note "check:cuda exit $rc: $(if [ -s "$OUT/check.txt" ]; then tail -1 "$OUT/check.txt"; else grep -m1 'check:cuda failed' "$OUT/check.log"; fi)"
  grep -E '^FAIL' "$OUT/check.txt" | head -20
fi
bench() { # label, flags...
  local label=$1; shift
  timeout 300 node $D/bench/compare.js "$@" > "$OUT/bench-$label.txt" 2> "$OUT/bench-$label.log"
  note "$label: $(grep -E '^ours: cuda' "$OUT/bench-$label.txt" | awk '{print $(NF-3), "img/s"}') ours, $(grep -E '^pytorch' "$OUT/bench-$label.txt" | awk '{print $(NF-3), "img/s"}') pytorch; $(grep -E '^ratio' "$OUT/bench-$label.txt" | tr '\n' ';')"
}
if has bench; then
  bench r18-b512-fp32 --engine cuda --arch resnet18 --size 32 --batch 512 --steps 20 --warmup 5
  bench r50-224-b64-fp32 --engine cuda --arch resnet50 --size 224 --batch 64 --steps 10 --warmup 3
  if [ "${CUDA_RUN_AMP:-0}" = 1 ]; then
    bench r18-b512-amp --engine cuda --precision mixed16 --arch resnet18 --size 32 --batch 512 --steps 20 --warmup 5
    bench r50-224-b64-amp --engine cuda --precision mixed16 --arch resnet50 --size 224 --batch 64 --steps 10 --warmup 3
  fi
fi
if has profile; then
  timeout 200 node $D/bench/train_throughput.js --engine cuda --arch resnet18 --batch 512 --steps 3 --profile 1 > "$OUT/profile.txt" 2>&1
  note "profile r18 b512: $(grep -E '^fallbacks' "$OUT/profile.txt"); $(grep -E '^GPU memory' "$OUT/profile.txt")"
fi
if has e2e; then
  timeout 300 node $D/bench/e2e_train.js --engine cuda --arch resnet18 --size 32 --batch 512 --steps 24 --workers 0,8 > "$OUT/e2e.txt" 2> "$OUT/e2e.log"
  note "e2e r18 b512: $(grep -E '^data.workers' "$OUT/e2e.txt" | awk '{print "workers", $2, $3, "img/s"}' | tr '\n' ';')"
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
    t0=$(date +%s)
    timeout 590 node $D/simtrip.js train -c configs/$c.yaml --run-dir /tmp/simtrip-runs/$c > "$OUT/$c.txt" 2>&1
    rc=$?
    note "$c: exit $rc in $(( $(date +%s) - t0 )) s (data generation included): $(summarize /tmp/simtrip-runs/$c/metrics.jsonl 2>/dev/null)"
  done
  timeout 200 node $D/bench/train_throughput.js --engine cuda --precision mixed16 --method simtriplet --arch resnet50 --size 128 --batch 128 --steps 5 > "$OUT/step-simtriplet.txt" 2>&1
  note "step only, SimTriplet ResNet-50 128 px b128 mixed16: $(grep -E '^throughput' "$OUT/step-simtriplet.txt")"
  timeout 200 node $D/bench/train_throughput.js --engine cuda --arch bit-r50x1 --norm batch --size 224 --batch 128 --steps 5 > "$OUT/step-bit.txt" 2>&1
  note "step only, BiT-R50x1 BN 224 px b128: $(grep -E '^throughput' "$OUT/step-bit.txt")"
  timeout 300 python3 bench/pytorch_simsiam.py --device cuda --amp 1 --arch resnet50 --size 128 --batch 128 --steps 10 > "$OUT/pytorch-r50-128.txt" 2>&1
  note "pytorch AMP ResNet-50 128 px b128, two views: $(tail -1 "$OUT/pytorch-r50-128.txt")"
fi

echo
echo "==== summary ($(date -u +%FT%TZ))"
printf '%s\n' "${summary[@]}"
