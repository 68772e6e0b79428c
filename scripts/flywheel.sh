#!/usr/bin/env bash
# The main job: set up (once), then run the flywheel on the embedded model. gpu profile on a CUDA machine, cpu
# otherwise. Extra arguments go to `python -m kit flywheel` (e.g. --generations 2 --run-dir runs/mine).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/setup.sh"
cd "$root"
exec python -m kit flywheel --run-dir runs/main --profile auto --generations 3 --seed 0 "$@"
