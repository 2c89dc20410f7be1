#!/usr/bin/env python3
"""Build the wheel (or take one) and check what ships: the product, typed, and nothing else.

    python .ci/check_wheel.py            # builds into a temporary folder with pip
    python .ci/check_wheel.py DIST.whl   # checks a wheel built elsewhere

Exits non-zero naming every problem. The demo model's data building and training (tools/) and the
tests never ship; ``py.typed`` (PEP 561), the export recipes and the demo's bundled assets do.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: files the product needs at run time (a wheel without them installs but fails later)
REQUIRED = (
    "zse_infer/py.typed",
    "zse_infer/__init__.py",
    "zse_infer/runtime/retriever.py",
    "zse_infer/recipes/",  # export/ recipes, mapped into the package
    "zse_infer/model_configs/",
    "zse_infer/assets/demo/",
    "zse_infer/serve/static/",
)
#: path parts that mark training, data building or test code
FORBIDDEN_PARTS = ("tools", "tests", "testing", "training", "__pycache__")


def _clean_copy(dest: Path) -> Path:
    """The checkout's files (tracked and new, not ignored) in ``dest``: setuptools reuses a source tree's
    build/ folder, so a wheel built in place can carry files deleted since (a false result either way)."""
    listed = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():  # deleted but not yet staged: skip
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


def build_wheel(out: Path) -> Path:
    source = _clean_copy(out / "src")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(source)], check=True)
    wheels = sorted(out.glob("zse_infer-*.whl"))
    if len(wheels) != 1:
        sys.exit(f"pip wheel made {[w.name for w in wheels]}, expected one zse_infer wheel")
    return wheels[0]


def problems(wheel: Path) -> list[str]:
    names = zipfile.ZipFile(wheel).namelist()
    found: list[str] = []
    for name in names:
        top = name.split("/")[0]
        if top != "zse_infer" and not (top.startswith("zse_infer-") and top.endswith(".dist-info")):
            found.append(f"{name}: outside the package (expected zse_infer/ or its .dist-info only)")
        parts = name.split("/")
        bad = [p for p in parts[:-1] if p in FORBIDDEN_PARTS or "training" in p]
        stem = Path(parts[-1]).stem
        if bad or stem.startswith("train") or stem.endswith("_v2"):
            found.append(f"{name}: training, data-building or test code does not ship")
    for need in REQUIRED:
        if not any(n == need or (need.endswith("/") and n.startswith(need)) for n in names):
            found.append(f"{need}: missing from the wheel")
    return found


def main(argv: list[str]) -> int:
    if argv:
        wheel = Path(argv[0])
        found = problems(wheel)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            wheel = build_wheel(Path(tmp))
            found = problems(wheel)
    if found:
        print(f"{wheel.name}: {len(found)} problem(s)", *found, sep="\n  ", file=sys.stderr)
        return 1
    print(f"{wheel.name}: ok (py.typed, recipes, assets; no tools/, tests or training code)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
