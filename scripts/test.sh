#!/usr/bin/env bash
# Set up (once), then run the tests: unit tests, the embedded model offline, and every notebook under papermill
# with the tiny profile. GPU tests (-m gpu) skip on a machine without CUDA. Extra arguments go to pytest.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/setup.sh"
cd "$root"
exec python -m pytest "$@"
