#!/usr/bin/env bash
# How an executed notebook looks in JupyterLab, checked as a user sees it: starts `jupyter lab` on a local port,
# opens the notebook in headless Chromium and writes a screenshot.
#
#   bash scripts/screenshot.sh RUN_DIR/gen_0/notebooks/03_reward_models.ipynb docs/jupyterlab.png [CELLS] [WxH]
#
# CELLS (e.g. 0,8-12) keeps those cells of the notebook only, so the part worth seeing (a plot) is on screen.
# Needs Chromium (Debian: apt-get install chromium). The server runs with no token on 127.0.0.1 only and is
# stopped on exit; Chromium runs with a fresh profile and no background networking.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
usage="usage: screenshot.sh NOTEBOOK.ipynb OUT.png [CELLS] [WIDTHxHEIGHT]"
notebook="$(realpath "${1:?$usage}")"
out="$(realpath -m "${2:?$usage}")"
cells="${3:-}"
size="${4:-1500x1700}"
browser="$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)"
[ -n "$browser" ] || { echo "screenshot: no Chromium found (apt-get install chromium)" >&2; exit 2; }
[ -f "$notebook" ] || { echo "screenshot: $notebook: no such notebook" >&2; exit 2; }
source "$root/.venv/bin/activate"

port="${KIT_LAB_PORT:-8899}"
work="$(mktemp -d)"
trap 'kill "$lab" 2>/dev/null || true; rm -rf "$work"' EXIT
name="$(basename "$notebook")"
python - "$notebook" "$work/$name" "$cells" <<'PY'
import json, sys
src, dest, spec = sys.argv[1:]
nb = json.load(open(src, encoding="utf-8"))
if spec:
    keep = set()
    for part in spec.split(","):
        a, _, b = part.partition("-")
        keep.update(range(int(a), int(b or a) + 1))
    nb["cells"] = [c for i, c in enumerate(nb["cells"]) if i in keep]
json.dump(nb, open(dest, "w", encoding="utf-8"))
PY
# No news pop-up; the notebook opens in the single-document view (/doc), the way a reader looks at one notebook.
mkdir -p "$work/settings/@jupyterlab/apputils-extension"
echo '{"fetchNews": "false"}' > "$work/settings/@jupyterlab/apputils-extension/notification.jupyterlab-settings"
JUPYTERLAB_SETTINGS_DIR="$work/settings" JUPYTER_CONFIG_DIR="$work/config" \
  jupyter lab --allow-root --no-browser --ip 127.0.0.1 --port "$port" --ServerApp.token= --ServerApp.password= \
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
  "http://127.0.0.1:$port/doc/tree/$name" >"$work/chrome.log" 2>&1 || { tail -20 "$work/chrome.log" >&2; exit 1; }
echo "screenshot: wrote $out ($name in JupyterLab, $size)"
