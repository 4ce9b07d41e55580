#!/usr/bin/env bash
# Builds the one-file Beacon agent with shiv (`make beacon-pyz`).
#   scripts/build-pyz.sh [OUTPUT] [PIP ARGS...]
# OUTPUT defaults to dist/beacon.pyz; PIP ARGS (e.g. --no-index --find-links DIR for an
# offline build) go to the `pip install` shiv runs. The pyz holds the agent, the SDK and
# requests, pyyaml and click, nothing of Pulse's dependencies; any python3 >= 3.11 runs it:
#   python3 beacon.pyz start -c beacon.yaml
# It unpacks itself once into $SHIV_ROOT (default ~/.shiv); the systemd unit points that
# into the agent's state directory.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${BIN:-.venv/bin}"
out="${1:-dist/beacon.pyz}"
shift || true
mkdir -p "$(dirname "$out")"
# --no-build-isolation: build with the venv's setuptools instead of fetching one.
"$BIN/shiv" --console-script beacon --output-file "$out" --python '/usr/bin/env python3' \
  --compressed --reproducible "$@" --no-build-isolation .
echo "built $out ($(du -h "$out" | cut -f1))"
