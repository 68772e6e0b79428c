#!/usr/bin/env bash
# The flywheel's lessons at a profile: one generation of each scenario (kit/config.py, SCENARIOS) into
# runs/lesson-<scenario>/, one after another (never two at once on two cores), each ending with its report.md.
# Compare each with the same profile and seed without a scenario (docs/results/cpu-seed0, generation 0):
#   python -m kit report runs/lesson-* --lessons docs/results/lessons.md --baseline runs/cpu-seed0
# Usage: bash scripts/lessons.sh [--profile cpu] [--seed 0] [scenario ...]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/setup.sh"
cd "$root"
profile=cpu; seed=0; scenarios=()
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile="$2"; shift 2;;
    --seed) seed="$2"; shift 2;;
    *) scenarios+=("$1"); shift;;
  esac
done
[ ${#scenarios[@]} -gt 0 ] || scenarios=(overfit emoji single_rater off_policy)
for s in "${scenarios[@]}"; do
  python -m kit flywheel --run-dir "runs/lesson-$s" --profile "$profile" --seed "$seed" --generations 1 --scenario "$s"
done
