#!/usr/bin/env bash
# The README's two set-up commands, on a fresh virtual environment: install, then the main job.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q -e ".[dev]"
"$work/venv/bin/zse-demo" --out "$work/demo"
test -s "$work/demo/metrics.json" && test -s "$work/demo/results.html" && test -s "$work/demo/explanation.png"
echo "fresh venv: install + zse-demo ok"
