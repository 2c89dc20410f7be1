#!/usr/bin/env bash
# The README's two set-up commands, on a fresh virtual environment: install, then the main job.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q -e ".[demo]"
# The demo extra is the light first run: no torch, and under 1.2 GB installed.
"$work/venv/bin/python" - "$work/venv" <<'PY'
import importlib.util
import sys
from pathlib import Path

if importlib.util.find_spec("torch") is not None:
    sys.exit("the demo extra installed torch: it must run on the shipped graphs without it")
size = sum(p.stat().st_size for p in Path(sys.argv[1]).rglob("*") if p.is_file() and not p.is_symlink())
print(f"fresh venv with .[demo]: {size / 2**30:.2f} GiB installed")
if size > 1.2 * 2**30:
    sys.exit(f"the demo extra installs {size / 2**30:.2f} GiB: expected under 1.2 GiB")
PY
/usr/bin/time -f "zse-demo: %e s wall, %U s user + %S s system CPU" "$work/venv/bin/zse-demo" --out "$work/demo"
test -s "$work/demo/metrics.json" && test -s "$work/demo/results.html"
grep -q '"graphs": "shipped"' "$work/demo/metrics.json"  # without torch: the shipped graphs
grep -q "<h1>" "$work/demo/results.html"
# Every picture the demo writes must be a real picture, not a blank or near-uniform canvas
# (synthesis.png was once 112x112 white but for four grey pixels and passed a non-empty check).
"$work/venv/bin/python" - "$work/demo" <<'PY'
import sys
from pathlib import Path

import numpy as np
from PIL import Image

folder = Path(sys.argv[1])
bad = []
for name in ("results.png", "explanation.png", "synthesis.png"):
    pixels = np.asarray(Image.open(folder / name).convert("RGB"))
    std = float(pixels.std())
    colours = len(np.unique(pixels.reshape(-1, 3), axis=0))
    size = f"{pixels.shape[1]}x{pixels.shape[0]}"
    print(f"{name}: {size}, pixel std {std:.1f}, {colours} colours")
    if std < 20 or colours < 64 or min(pixels.shape[:2]) < 200:
        bad.append(f"{name} ({size}, std {std:.1f}, {colours} colours): expected a real picture, >= 200 px, std >= 20, >= 64 colours")
if bad:
    sys.exit("near-uniform or tiny images: " + "; ".join(bad))
PY
echo "fresh venv: install + zse-demo ok"
