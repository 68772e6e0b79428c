#!/usr/bin/env bash
# How an executed notebook looks in JupyterLab, checked as a user sees it: starts `jupyter lab` on a local port,
# opens the notebook in headless Chromium and writes a screenshot.
#
#   bash scripts/screenshot.sh RUN_DIR/gen_0/notebooks/03_reward_models.ipynb docs/jupyterlab.png
#
# Needs Chromium (Debian: apt-get install chromium). The server runs with no token on 127.0.0.1 only and is
# stopped on exit; Chromium runs with a fresh profile and no background networking.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
notebook="$(realpath "${1:?usage: screenshot.sh NOTEBOOK.ipynb OUT.png [WIDTHxHEIGHT]}")"
out="$(realpath -m "${2:?usage: screenshot.sh NOTEBOOK.ipynb OUT.png [WIDTHxHEIGHT]}")"
size="${3:-1500x1700}"
browser="$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)"
[ -n "$browser" ] || { echo "screenshot: no Chromium found (apt-get install chromium)" >&2; exit 2; }
[ -f "$notebook" ] || { echo "screenshot: $notebook: no such notebook" >&2; exit 2; }
source "$root/.venv/bin/activate"

port="${KIT_LAB_PORT:-8899}"
work="$(mktemp -d)"
trap 'kill "$lab" 2>/dev/null || true; rm -rf "$work"' EXIT
cp "$notebook" "$work/"
name="$(basename "$notebook")"
# The notebook opens in single-document mode with the file browser closed, the way a reader looks at one notebook.
mkdir -p "$work/settings/@jupyterlab/application-extension"
echo '{"mode": "single-document"}' > "$work/settings/@jupyterlab/application-extension/shell.jupyterlab-settings"
JUPYTERLAB_SETTINGS_DIR="$work/settings" JUPYTER_CONFIG_DIR="$work/config" \
  jupyter lab --no-browser --ip 127.0.0.1 --port "$port" --ServerApp.token= --ServerApp.password= \
  --ServerApp.root_dir="$work" --LabApp.news_url=None --ServerApp.disable_check_xsrf=True \
  >"$work/lab.log" 2>&1 &
lab=$!
for _ in $(seq 60); do
  curl -fs "http://127.0.0.1:$port/api/status" >/dev/null 2>&1 && break
  sleep 1
done
curl -fs "http://127.0.0.1:$port/api/status" >/dev/null || { cat "$work/lab.log" >&2; exit 1; }

"$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
  --disable-component-update --disable-sync --user-data-dir="$work/chrome" --hide-scrollbars \
  --window-size="${size/x/,}" --virtual-time-budget=30000 --screenshot="$out" \
  "http://127.0.0.1:$port/lab/tree/$name" >"$work/chrome.log" 2>&1 || { tail -20 "$work/chrome.log" >&2; exit 1; }
echo "screenshot: wrote $out ($name in JupyterLab, $size)"
