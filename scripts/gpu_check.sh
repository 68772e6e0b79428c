#!/usr/bin/env bash
# The GPU path's one real check, for whoever next has a CUDA GPU: set up (once), then the GPU tests, a one-generation
# tiny flywheel on the unsloth backend and again on transformers-nf4, and bench/speed.py's short suite. Each step
# runs under a 9-minute limit; one summary table is printed and written to bench/results/gpu-check-<gpu>.md (logs
# in runs/gpu-check/). Exits non-zero if any step failed. On a machine without a CUDA GPU it does nothing.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "gpu_check: no CUDA GPU on this machine (nvidia-smi sees none); nothing was run" >&2
  exit 2
fi
source "$root/scripts/setup.sh" || exit 1
set +e   # setup.sh sets -e; here a failing step is recorded, and the next one still runs
cd "$root"
limit=540
logs="runs/gpu-check"
rm -rf "$logs" && mkdir -p "$logs"
gpu="$(nvidia-smi --query-gpu=name,compute_cap,memory.total,driver_version --format=csv,noheader | head -1)"
rows=()
failed=0

step() {  # step NAME COMMAND...: run with the time limit, record status, seconds and the log's last line
  local name="$1"; shift
  local log="$logs/${name//[^a-z0-9]/-}.log" start rc status
  echo "gpu_check: $name ..."
  start=$(date +%s)
  timeout "$limit" "$@" >"$log" 2>&1
  rc=$?
  case $rc in
    0) status=ok ;;
    124) status="timeout (${limit} s)"; failed=1 ;;
    *) status="FAIL (exit $rc)"; failed=1 ;;
  esac
  local last; last="$(grep -v '^\s*$' "$log" | tail -1 | cut -c1-110 | tr '|' '/')"
  rows+=("| $name | $status | $(( $(date +%s) - start )) | $last |")
  echo "gpu_check: $name: $status"
}

step "check-env" python -m kit check-env
step "gpu tests, unsloth" env KIT_BACKEND=unsloth python -m pytest -m gpu tests/test_gpu.py -q
step "gpu tests, transformers-nf4" env KIT_BACKEND=transformers-nf4 python -m pytest -m gpu tests/test_gpu.py -q
for backend in unsloth transformers-nf4; do
  step "tiny flywheel, 1 generation, $backend" env KIT_BACKEND="$backend" python -m kit flywheel \
    --run-dir "$logs/flywheel-$backend" --profile tiny --generations 1 --seed 0
done
step "bench/speed.py --short" python bench/speed.py --short

slug="$(echo "${gpu%%,*}" | tr 'A-Z' 'a-z' | tr -c 'a-z0-9\n' '-' | sed 's/-\+/-/g; s/-$//')"
out="bench/results/gpu-check-${slug}.md"
{
  commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "scripts/gpu_check.sh on ${gpu} (name, compute capability, memory, driver), $(date -u +%Y-%m-%d), commit $commit"
  echo
  echo "| step | status | seconds | last line of its log |"
  echo "| --- | --- | ---: | --- |"
  printf '%s\n' "${rows[@]}"
  echo
  echo "Speed figures: bench/results/speed-*-short.md. Logs and runs: runs/gpu-check/ (not committed)."
} > "$out"
echo
cat "$out"
echo "gpu_check: table written to $out"
exit $failed
